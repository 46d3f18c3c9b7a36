// spawn in Go: the peer of bench/spawn.cpp, same shape, same count.
//
// N sender goroutines and one collector (the main goroutine). Every sender
// writes its index once into one shared unbuffered channel; the collector
// reads N values and checks that they sum to exactly N(N-1)/2, then waits for
// every sender to end (a sync.WaitGroup, the peer of csp::Parallel's join). A
// sender blocks in its write until the collector takes it, so the senders pile
// up alive at once; `max_alive` (the most senders between their start and the
// end of their write, counted with atomics) shows how many actually were.
// GOMAXPROCS sets the worker count.
//
// Figures: ns per process = the wall time of starting the N goroutines,
// collecting and joining them, / N; rss_kib_per_process = (peak RSS afterwards
// (VmHWM) - RSS just before starting them (VmRSS)) / N, in KiB, from
// /proc/self/status.
//
// Built by bench/run with `GO111MODULE=off go build -o X spawn.go`.
// Usage: spawn_go [N]
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const defaultProcesses = 1000000

// alive counts the senders alive at once; peak is its maximum.
var alive, peak int64

func sender(out chan<- int64, index int64, wg *sync.WaitGroup) {
	n := atomic.AddInt64(&alive, 1)
	for p := atomic.LoadInt64(&peak); n > p && !atomic.CompareAndSwapInt64(&peak, p, n); p = atomic.LoadInt64(&peak) {
	}
	out <- index
	atomic.AddInt64(&alive, -1)
	wg.Done()
}

// procStatusKiB returns a "VmRSS:"/"VmHWM:" line of /proc/self/status, in KiB; -1 when unreadable.
func procStatusKiB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			fields := strings.Fields(line[len(key):])
			if len(fields) > 0 {
				if v, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return v
				}
			}
			return -1
		}
	}
	return -1
}

func main() {
	n := int64(defaultProcesses)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "usage: %s [processes>0]\n", os.Args[0])
			os.Exit(2)
		}
		n = v
	}

	all := make(chan int64)
	var wg sync.WaitGroup

	rssBefore := procStatusKiB("VmRSS:")
	t0 := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go sender(all, i, &wg)
	}
	sum := int64(0)
	for i := int64(0); i < n; i++ {
		sum += <-all
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	rssPeak := procStatusKiB("VmHWM:")

	if expect := n * (n - 1) / 2; sum != expect {
		fmt.Fprintf(os.Stderr, "spawn_go: collector's sum %d, expected %d\n", sum, expect)
		os.Exit(1)
	}
	rssKiB := -1.0
	if rssBefore >= 0 && rssPeak >= 0 {
		rssKiB = float64(rssPeak-rssBefore) / float64(n)
	}
	nsPerOp := secs * 1e9 / float64(n)
	fmt.Printf("RESULT name=spawn impl=go workers=%d ns_per_op=%.2f rss_kib_per_process=%.3f "+
		"processes=%d max_alive=%d seconds=%.4f rss_before_kib=%d rss_peak_kib=%d\n",
		runtime.GOMAXPROCS(0), nsPerOp, rssKiB, n, atomic.LoadInt64(&peak), secs, rssBefore, rssPeak)
}
