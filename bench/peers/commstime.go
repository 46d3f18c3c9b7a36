// commstime in Go: the peer of bench/commstime.cpp, same network, same count.
//
// Prefix(0) -a-> Delta (sequential) -b-> Successor -c-> Prefix, Delta -d-> Consumer.
// All channels unbuffered. One cycle is four communications; the figure is the
// consumer's timed loop / (4 * cycles). GOMAXPROCS sets the worker count.
//
// Built by bench/run with `GO111MODULE=off go build -o X commstime.go`.
// Usage: commstime_go [cycles]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const defaultCycles = 1000000

func prefix(first int64, in <-chan int64, out chan<- int64) {
	out <- first
	for {
		out <- <-in
	}
}

func delta(in <-chan int64, out1, out2 chan<- int64) {
	for {
		x := <-in
		out1 <- x
		out2 <- x
	}
}

func successor(in <-chan int64, out chan<- int64) {
	for {
		out <- (<-in) + 1
	}
}

func main() {
	cycles := int64(defaultCycles)
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [cycles>0]\n", os.Args[0])
			os.Exit(2)
		}
		cycles = n
	}
	warmup := cycles/10 + 1

	a := make(chan int64)
	b := make(chan int64)
	c := make(chan int64)
	d := make(chan int64)
	go prefix(0, c, a)
	go delta(a, b, d)
	go successor(b, c)

	// The consumer runs in the main goroutine; the others are abandoned at exit.
	ok := true
	expect := int64(0)
	for i := int64(0); i < warmup; i++ {
		if <-d != expect {
			ok = false
		}
		expect++
	}
	t0 := time.Now()
	for i := int64(0); i < cycles; i++ {
		if <-d != expect {
			ok = false
		}
		expect++
	}
	secs := time.Since(t0).Seconds()
	if !ok {
		fmt.Fprintln(os.Stderr, "commstime_go: consumer read wrong values")
		os.Exit(1)
	}
	nsPerOp := secs * 1e9 / (4 * float64(cycles))
	fmt.Printf("RESULT name=commstime impl=go workers=%d ns_per_op=%.2f cycles=%d seconds=%.4f\n",
		runtime.GOMAXPROCS(0), nsPerOp, cycles, secs)
}
