// pingpong in Go: the peer of bench/pingpong.cpp, same shape, same count.
//
// Ping -ping-> Pong -pong-> Ping, both channels unbuffered. Ping (the main
// goroutine) writes 0, 1, 2, ... and checks each echo; one round trip is two
// one-way messages, so the figure is Ping's timed loop / (2 * round trips),
// after a warm-up of round trips/10. GOMAXPROCS sets the worker count; where
// the two goroutines run is up to Go's scheduler.
//
// Built by bench/run with `GO111MODULE=off go build -o X pingpong.go`.
// Usage: pingpong_go [round_trips]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const defaultRoundTrips = 5000000

func pong(in <-chan int64, out chan<- int64) {
	for {
		out <- <-in
	}
}

func main() {
	roundTrips := int64(defaultRoundTrips)
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [round_trips>0]\n", os.Args[0])
			os.Exit(2)
		}
		roundTrips = n
	}
	warmup := roundTrips/10 + 1

	ping := make(chan int64)
	echo := make(chan int64)
	go pong(ping, echo)

	// Ping runs in the main goroutine; Pong is abandoned at exit.
	ok := true
	x := int64(0)
	for i := int64(0); i < warmup; i++ {
		ping <- x
		if <-echo != x {
			ok = false
		}
		x++
	}
	t0 := time.Now()
	for i := int64(0); i < roundTrips; i++ {
		ping <- x
		if <-echo != x {
			ok = false
		}
		x++
	}
	secs := time.Since(t0).Seconds()
	if !ok {
		fmt.Fprintln(os.Stderr, "pingpong_go: ping read a wrong echo")
		os.Exit(1)
	}
	nsPerOp := secs * 1e9 / (2 * float64(roundTrips))
	fmt.Printf("RESULT name=pingpong impl=go workers=%d ns_per_op=%.2f round_trips=%d seconds=%.4f\n",
		runtime.GOMAXPROCS(0), nsPerOp, roundTrips, secs)
}
