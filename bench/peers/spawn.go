// spawn in Go: the peer of bench/spawn.cpp, same shape, same count, twice.
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
// The program runs that round twice, the same both times (a fresh channel and
// N fresh goroutines): round 1 is cold, round 2 warm, reusing whatever the Go
// runtime keeps (dead goroutines and their stacks). Why: on a VM (Firecracker)
// the first touch of a guest page never used before costs 15-30 us of
// host-side backing, so the cold round mostly counts the fresh pages touched;
// the warm round measures creating, scheduling and ending goroutines.
//
// Figures: ns per process (ns_per_op) = round 2's wall time of starting the N
// goroutines, collecting and joining them, / N; `cold_ns` = the same for round
// 1; rss_kib_per_process = (peak RSS after both rounds (VmHWM) - RSS just
// before round 1 (VmRSS)) / N, in KiB, from /proc/self/status (both rounds
// have N alive at once, so the peak over both is the footprint of N
// goroutines). `max_alive` is the smaller of the two rounds' (`cold_max_alive`,
// `warm_max_alive`: each round's). Both rounds' sums are checked exactly.
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

// round runs one round: a fresh channel, n senders, the collector, the join.
// It returns the round's wall time in seconds and its max_alive, and exits
// (status 1) when the collector's sum is wrong.
func round(n int64, which string) (float64, int64) {
	atomic.StoreInt64(&alive, 0)
	atomic.StoreInt64(&peak, 0)
	all := make(chan int64)
	var wg sync.WaitGroup

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

	if expect := n * (n - 1) / 2; sum != expect {
		fmt.Fprintf(os.Stderr, "spawn_go: %s round: collector's sum %d, expected %d\n", which, sum, expect)
		os.Exit(1)
	}
	return secs, atomic.LoadInt64(&peak)
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

	rssBefore := procStatusKiB("VmRSS:")
	coldSecs, coldAlive := round(n, "cold")
	secs, warmAlive := round(n, "warm")
	rssPeak := procStatusKiB("VmHWM:")

	rssKiB := -1.0
	if rssBefore >= 0 && rssPeak >= 0 {
		rssKiB = float64(rssPeak-rssBefore) / float64(n)
	}
	maxAlive := coldAlive
	if warmAlive < maxAlive {
		maxAlive = warmAlive
	}
	nsPerOp := secs * 1e9 / float64(n)
	coldNs := coldSecs * 1e9 / float64(n)
	fmt.Printf("RESULT name=spawn impl=go workers=%d ns_per_op=%.2f rss_kib_per_process=%.3f "+
		"cold_ns=%.2f processes=%d max_alive=%d cold_max_alive=%d warm_max_alive=%d "+
		"seconds=%.4f cold_seconds=%.4f rss_before_kib=%d rss_peak_kib=%d\n",
		runtime.GOMAXPROCS(0), nsPerOp, rssKiB, coldNs, n, maxAlive, coldAlive, warmAlive,
		secs, coldSecs, rssBefore, rssPeak)
}
