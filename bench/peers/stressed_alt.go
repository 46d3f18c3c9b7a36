// stressed_alt in Go: the peer of bench/stressed_alt.cpp, same network, same count.
//
// 10 unbuffered channels, 10 writer goroutines on each (100 writers), each
// writing in an endless loop; one reader (the main goroutine) choosing among
// the 10 channels with a literal 10-case `select`, which is what a Go
// programmer writes for a fixed set of channels (not reflect.Select). Go's
// select picks uniformly at random among the ready cases, like csp::FairSelect.
// The figure is the reader's timed loop / messages, after a warm-up of at
// least messages/10 that goes on until every one of the 100 writers has
// delivered (the same rule as the csp program; warmup= in the RESULT line
// says how many messages it took). GOMAXPROCS sets the worker count.
//
// Built by bench/run with `GO111MODULE=off go build -o X stressed_alt.go`.
// Usage: stressed_alt_go [messages]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const (
	defaultMessages   = 1000000
	channels          = 10
	writersPerChannel = 10
)

func writer(out chan<- int64, id int64) {
	for {
		out <- id
	}
}

func main() {
	messages := int64(defaultMessages)
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [messages>0]\n", os.Args[0])
			os.Exit(2)
		}
		messages = n
	}
	warmup := messages/10 + 1

	var ch [channels]chan int64
	for c := range ch {
		ch[c] = make(chan int64)
		for w := 0; w < writersPerChannel; w++ {
			go writer(ch[c], int64(c*writersPerChannel+w))
		}
	}

	var perChannel [channels]int64
	var seen [channels * writersPerChannel]bool
	unseen := channels * writersPerChannel // writers not heard from yet
	ok := true
	// receive takes one message and checks that it came from a writer of that channel.
	receive := func(c int, v int64) {
		if v/writersPerChannel != int64(c) || v < 0 || v >= int64(len(seen)) {
			ok = false
		} else if !seen[v] {
			seen[v] = true
			unseen--
		}
		perChannel[c]++
	}
	read := func() {
		select {
		case v := <-ch[0]:
			receive(0, v)
		case v := <-ch[1]:
			receive(1, v)
		case v := <-ch[2]:
			receive(2, v)
		case v := <-ch[3]:
			receive(3, v)
		case v := <-ch[4]:
			receive(4, v)
		case v := <-ch[5]:
			receive(5, v)
		case v := <-ch[6]:
			receive(6, v)
		case v := <-ch[7]:
			receive(7, v)
		case v := <-ch[8]:
			receive(8, v)
		case v := <-ch[9]:
			receive(9, v)
		}
	}

	// Until every writer has been heard from; the cap stops a writer that
	// never runs from hanging the benchmark (the run then fails).
	warmed := int64(0)
	for ; warmed < warmup || (unseen > 0 && warmed < 100*warmup); warmed++ {
		read()
	}
	perChannel = [channels]int64{}
	t0 := time.Now()
	for i := int64(0); i < messages; i++ {
		read()
	}
	secs := time.Since(t0).Seconds()
	if !ok || unseen > 0 {
		fmt.Fprintf(os.Stderr, "stressed_alt_go: a message arrived on the wrong channel, "+
			"or a writer never delivered in %d warm-up messages\n", warmed)
		os.Exit(1)
	}
	lo, hi := perChannel[0], perChannel[0]
	for _, n := range perChannel {
		if n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	// The writers are abandoned at exit.
	nsPerOp := secs * 1e9 / float64(messages)
	fmt.Printf("RESULT name=stressed_alt impl=go workers=%d ns_per_op=%.2f messages=%d seconds=%.4f "+
		"warmup=%d channel_min=%d channel_max=%d\n",
		runtime.GOMAXPROCS(0), nsPerOp, messages, secs, warmed, lo, hi)
}
