// buffered in Go: the peer of bench/buffered.cpp, same shape, same count.
//
// 100 writer goroutines write into one make(chan int64, 64); the reader (the
// main goroutine) reads. Writer w writes w*per .. w*per+per-1 (per =
// messages/100); the reader reads every message and checks the count and that
// they sum to exactly messages(messages-1)/2. Figure: ns per message = the
// reader's timed loop (every message, from its first read to its last) /
// messages. GOMAXPROCS sets the worker count.
//
// Built by bench/run with `GO111MODULE=off go build -o X buffered.go`.
// Usage: buffered_go [messages]    (rounded down to a multiple of 100)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const (
	defaultMessages = 10000000
	writers         = 100
	capacity        = 64
)

func writer(out chan<- int64, first, count int64) {
	for x, end := first, first+count; x < end; x++ {
		out <- x
	}
}

func main() {
	requested := int64(defaultMessages)
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n < writers {
			fmt.Fprintf(os.Stderr, "usage: %s [messages>=%d]\n", os.Args[0], writers)
			os.Exit(2)
		}
		requested = n
	}
	per := requested / writers
	messages := per * writers

	ch := make(chan int64, capacity)
	for w := int64(0); w < writers; w++ {
		go writer(ch, w*per, per)
	}

	// The reader runs in the main goroutine; the writers have all ended when
	// it has read every message.
	sum := int64(0)
	t0 := time.Now()
	for i := int64(0); i < messages; i++ {
		sum += <-ch
	}
	secs := time.Since(t0).Seconds()
	if expect := messages * (messages - 1) / 2; sum != expect {
		fmt.Fprintf(os.Stderr, "buffered_go: reader's sum %d, expected %d\n", sum, expect)
		os.Exit(1)
	}
	nsPerOp := secs * 1e9 / float64(messages)
	fmt.Printf("RESULT name=buffered impl=go workers=%d ns_per_op=%.2f messages=%d writers=%d "+
		"capacity=%d seconds=%.4f\n",
		runtime.GOMAXPROCS(0), nsPerOp, messages, writers, capacity, secs)
}
