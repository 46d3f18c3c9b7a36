// barrier in Go: the peer of bench/barrier.cpp, 8 goroutines in phases.
//
// Go has no barrier; the idiom is a sync.WaitGroup per phase: the main
// goroutine releases the 8 member goroutines (a send on each one's channel),
// each does its (empty) step and calls Done, and main's Wait returns when
// all 8 have. Figure: ns per phase = the whole run / phases. GOMAXPROCS
// sets the worker count.
//
// Built by bench/run with `GO111MODULE=off go build -o X barrier.go`.
// Usage: barrier_go [phases]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const members = 8

func main() {
	phases := int64(1000000)
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "usage: %s [phases>0]\n", os.Args[0])
			os.Exit(2)
		}
		phases = n
	}
	var wg sync.WaitGroup
	var done [members]int64
	starts := make([]chan struct{}, members)
	t0 := time.Now()
	for i := range starts {
		starts[i] = make(chan struct{})
		go func(i int) {
			for range starts[i] {
				done[i]++
				wg.Done()
			}
		}(i)
	}
	for p := int64(0); p < phases; p++ {
		wg.Add(members)
		for _, s := range starts {
			s <- struct{}{}
		}
		wg.Wait()
	}
	secs := time.Since(t0).Seconds()
	for i := range starts {
		close(starts[i])
		if done[i] != phases {
			fmt.Fprintf(os.Stderr, "barrier_go: a member completed %d of %d phases\n", done[i], phases)
			os.Exit(1)
		}
	}
	fmt.Printf("RESULT name=barrier impl=go workers=%d ns_per_op=%.2f phases=%d members=%d seconds=%.4f\n",
		runtime.GOMAXPROCS(0), secs*1e9/float64(phases), phases, members, secs)
}
