// pipeline in Go: the peer of bench/pipeline.cpp, same items, stages and sum.
//
//   chain: a goroutine per stage, unbuffered channels between them
//   farm:  four worker goroutines running all four functions, on a shared
//          input and a shared output channel (closed when all four are done)
//
// Figure: ns per item = the whole run (goroutines started to the sink's
// sum) / items. GOMAXPROCS sets the worker count.
//
// Built by bench/run with `GO111MODULE=off go build -o X pipeline.go`.
// Usage: pipeline_go [items] [chain|farm]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func f1(x uint64) uint64   { return x*3 + 1 }
func f2(x uint64) uint64   { return x ^ (x >> 7) }
func f3(x uint64) uint64   { return x + 0x9E37 }
func f4(x uint64) uint64   { return (x * 5) & 0xFFFFFFFF }
func all4(x uint64) uint64 { return f4(f3(f2(f1(x)))) }

func stage(f func(uint64) uint64, in <-chan uint64) <-chan uint64 {
	out := make(chan uint64)
	go func() {
		for x := range in {
			out <- f(x)
		}
		close(out)
	}()
	return out
}

func main() {
	items := int64(1000000)
	shape := "chain"
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "usage: %s [items>0] [chain|farm]\n", os.Args[0])
			os.Exit(2)
		}
		items = n
	}
	if len(os.Args) > 2 {
		shape = os.Args[2]
	}
	if shape != "chain" && shape != "farm" {
		fmt.Fprintf(os.Stderr, "usage: %s [items>0] [chain|farm]\n", os.Args[0])
		os.Exit(2)
	}
	t0 := time.Now()
	src := make(chan uint64)
	go func() {
		for i := int64(0); i < items; i++ {
			src <- uint64(i)
		}
		close(src)
	}()
	var last <-chan uint64
	if shape == "chain" {
		last = stage(f4, stage(f3, stage(f2, stage(f1, src))))
	} else {
		out := make(chan uint64)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				for x := range src {
					out <- all4(x)
				}
				wg.Done()
			}()
		}
		go func() { wg.Wait(); close(out) }()
		last = out
	}
	sum := uint64(0)
	for x := range last {
		sum += x
	}
	secs := time.Since(t0).Seconds()
	want := uint64(0)
	for i := int64(0); i < items; i++ {
		want += all4(uint64(i))
	}
	if sum != want {
		fmt.Fprintf(os.Stderr, "pipeline_go: the sink's sum is wrong\n")
		os.Exit(1)
	}
	fmt.Printf("RESULT name=pipeline impl=go-%s workers=%d ns_per_op=%.2f items_per_s=%.0f items=%d seconds=%.4f\n",
		shape, runtime.GOMAXPROCS(0), secs*1e9/float64(items), float64(items)/secs, items, secs)
}
