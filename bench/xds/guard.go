package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// defaultMaxRSS is the control plane RSS at which a point is stopped: half
// of the memory available when the bench starts (the machine is shared;
// a control plane swapping or killed by the OOM killer measures nothing).
func defaultMaxRSS() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 8192
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return kb / 1024 / 2
			}
		}
	}
	return 8192
}

// guard kills the control plane when its RSS passes the limit, and says
// why in r.aborted.
func (r *runner) guard(stop <-chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-r.control.Done():
			return
		case <-t.C:
		}
		r.control.CPUSeconds() // keeps the last value for after a kill
		rss, hwm := r.control.MemMiB()
		if hwm > 0 {
			r.peak.Store(uint64(hwm * 1024))
		}
		if r.o.maxRSS > 0 && rss > r.o.maxRSS {
			ready := 0
			for _, s := range r.simList() {
				if _, ok := s.readiness(); ok {
					ready++
				}
			}
			r.aborted.Store(fmt.Sprintf("control plane stopped at RSS %.0f MiB > -max-control-rss %.0f MiB, %d proxies ready",
				rss, r.o.maxRSS, ready))
			r.o.logf("%s: %s", r.pt, r.aborted.Load())
			r.control.Kill()
			return
		}
	}
}

// peakMiB is the last VmHWM the guard read, for when the process is gone.
func (r *runner) peakMiB() float64 { return float64(r.peak.Load()) / 1024 }
