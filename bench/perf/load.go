package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// latency is a run's latency distribution, in seconds.
type latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func (l latency) minus(o latency) latency {
	return latency{P50: l.P50 - o.P50, P90: l.P90 - o.P90, P99: l.P99 - o.P99, P999: l.P999 - o.P999, Max: l.Max - o.Max}
}

// loadRun is what one fortio run measured.
type loadRun struct {
	qps    float64
	lat    latency
	errors int
}

// load describes a fortio run: the URL (an http:// one, or tcp://), the
// Host header, the protocol and the rate (0: as fast as it goes).
type load struct {
	name     string
	url      string
	host     string
	protocol string
	qps      int
	seconds  float64
	// payload is the request (and, for HTTP, response) size; 0: -payload.
	payload int
}

// fortio runs one load on the load CPU and reads its JSON result.
func (e *env) fortio(ctx context.Context, l load) (*loadRun, error) {
	out := filepath.Join(e.dir, "fortio-"+l.name+".json")
	if l.payload == 0 {
		l.payload = e.o.payload
	}
	args := []string{"-c", e.o.loadCPU, e.o.fortio, "load", "-qps", strconv.Itoa(l.qps), "-c", strconv.Itoa(e.o.conns),
		"-t", strconv.FormatFloat(l.seconds, 'f', -1, 64) + "s", "-payload-size", strconv.Itoa(l.payload),
		"-json", out, "-p", "50,90,99,99.9", "-quiet"}
	switch l.protocol {
	case "h2c":
		// fortio's fast client is HTTP/1.1 only; net/http's speaks h2c.
		args = append(args, "-stdclient", "-h2")
	}
	if l.host != "" {
		args = append(args, "-H", "Host: "+l.host)
	}
	url := l.url
	if l.protocol != "tcp" {
		url += "?size=" + strconv.Itoa(l.payload)
	}
	args = append(args, url)
	logf, err := os.Create(filepath.Join(e.dir, "fortio-"+l.name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "taskset", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("fortio %s: %w (see %s)", l.name, err, logf.Name())
	}
	return readFortio(out)
}

func readFortio(path string) (*loadRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r struct {
		ActualQPS         float64
		RetCodes          map[string]int
		DurationHistogram struct {
			Max         float64
			Percentiles []struct{ Percentile, Value float64 }
		}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	run := &loadRun{qps: r.ActualQPS}
	for code, n := range r.RetCodes {
		if code != "200" && code != "OK" {
			run.errors += n
		}
	}
	run.lat.Max = r.DurationHistogram.Max
	for _, p := range r.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			run.lat.P50 = p.Value
		case 90:
			run.lat.P90 = p.Value
		case 99:
			run.lat.P99 = p.Value
		case 99.9:
			run.lat.P999 = p.Value
		}
	}
	return run, nil
}
