// The Go side of `cargo bench --bench workers`: the same workloads with
// goroutines, GOMAXPROCS playing the number of workers. Go is not needed to
// build or test corio; see docs/performance.md for how the figures compare.
//
//	cd benches/go
//	go run . fanout        # 100,000 goroutines of about 20 µs of work, GOMAXPROCS=1 and 2
//	go run . spawn         # spawn + join, batches of 1,000, GOMAXPROCS=2
//	go run . pingpong      # round trip over two unbuffered channels, GOMAXPROCS=2
//	go run . parked        # 1,000,000 goroutines blocked on a channel, GOMAXPROCS=2
//	go run .               # all of them
//
// Each timing is run 5 times; the median is printed, with the range.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	fanoutTasks = 100_000
	batch       = 1_000
	parkedTasks = 1_000_000
	rounds      = 5
)

var sink uint64

// work is the CPU work of one fan-out goroutine: iters dependent
// multiply-adds, as in benches/workers.rs.
//
//go:noinline
func work(iters uint64) uint64 {
	var x uint64
	for i := uint64(0); i < iters; i++ {
		x = x*31 + i
	}
	return x
}

// calibrate returns how many iterations of work take about 20 µs (the
// fastest of several timings).
func calibrate() uint64 {
	const probe = 1_000_000
	best := time.Hour
	for i := 0; i < 7; i++ {
		t := time.Now()
		sink += work(probe)
		if d := time.Since(t); d < best {
			best = d
		}
	}
	return uint64(float64(probe) * 20e-6 / best.Seconds())
}

// median runs f rounds times and returns the median and the range.
func median(f func() time.Duration) (time.Duration, time.Duration, time.Duration) {
	var ds []time.Duration
	for i := 0; i < rounds; i++ {
		ds = append(ds, f())
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[0], ds[len(ds)-1]
}

func fanout(w uint64) time.Duration {
	t := time.Now()
	hs := make([]chan uint64, fanoutTasks)
	for i := range hs {
		h := make(chan uint64, 1)
		hs[i] = h
		go func() { h <- work(w) }()
	}
	for _, h := range hs {
		sink += <-h
	}
	return time.Since(t)
}

func spawnJoin(batches int) time.Duration {
	hs := make([]chan uint64, batch)
	t := time.Now()
	for b := 0; b < batches; b++ {
		for i := range hs {
			h := make(chan uint64, 1)
			hs[i] = h
			v := uint64(i)
			go func() { h <- v }()
		}
		for _, h := range hs {
			sink += <-h
		}
	}
	return time.Since(t) / time.Duration(batches*batch)
}

func pingpong(n int) time.Duration {
	ping, pong := make(chan uint64), make(chan uint64)
	done := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v
		}
		close(done)
	}()
	t := time.Now()
	for i := 0; i < n; i++ {
		ping <- uint64(i)
		sink += <-pong
	}
	d := time.Since(t) / time.Duration(n)
	close(ping)
	<-done
	return d
}

func rss() uint64 {
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kib, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l[6:]), "kB")), 10, 64)
			return kib * 1024
		}
	}
	panic("no VmRSS")
}

func parked(n int) {
	gate := make(chan struct{})
	var started atomic.Int64
	before := rss()
	t := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			started.Add(1)
			<-gate
		}()
	}
	for started.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	took := time.Since(t)
	fmt.Printf("parked: %d goroutines, GOMAXPROCS=%d: created and parked in %.2f s, %d bytes/goroutine\n",
		n, runtime.GOMAXPROCS(0), took.Seconds(), (rss()-before)/uint64(n))
	os.Exit(0) // tearing them down is not measured
}

func main() {
	which := "all"
	if len(os.Args) > 1 {
		which = os.Args[1]
	}
	on := func(w string) bool { return which == "all" || which == w }
	fmt.Printf("%s, %d CPUs\n", runtime.Version(), runtime.NumCPU())
	if on("fanout") {
		w := calibrate()
		fmt.Printf("fan-out work: %d multiply-adds (about 20 µs)\n", w)
		for _, procs := range []int{1, 2} {
			runtime.GOMAXPROCS(procs)
			m, lo, hi := median(func() time.Duration { return fanout(w) })
			fmt.Printf("fanout: %d x 20 us, GOMAXPROCS=%d: %.3f s [%.3f .. %.3f]\n",
				fanoutTasks, procs, m.Seconds(), lo.Seconds(), hi.Seconds())
		}
	}
	runtime.GOMAXPROCS(2)
	if on("spawn") {
		m, lo, hi := median(func() time.Duration { return spawnJoin(200) })
		fmt.Printf("spawn+join: batches of %d, GOMAXPROCS=2: %v per goroutine [%v .. %v]\n", batch, m, lo, hi)
	}
	if on("pingpong") {
		m, lo, hi := median(func() time.Duration { return pingpong(200_000) })
		fmt.Printf("pingpong: unbuffered channels, GOMAXPROCS=2: %v per round trip [%v .. %v]\n", m, lo, hi)
	}
	if on("parked") {
		// The last: it exits without tearing down.
		parked(parkedTasks)
	}
}
