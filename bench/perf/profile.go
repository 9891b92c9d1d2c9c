package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// profile starts a CPU profile of each sluice proxy of t (its admin's
// /debug/pprof/profile) lasting most of a run of length d;
// the returned wait collects them into -out as NAME-PROXY.cpu.pprof, then
// takes each proxy's allocation profile (NAME-PROXY.allocs.pprof: every
// allocation since the start, so the run's requests dominate it). The
// issue's point 2: profiles of the request path under load.
func (e *env) profile(ctx context.Context, t *target, name string, d time.Duration) (wait func() error) {
	if len(t.admin) == 0 {
		return func() error { return nil } // direct: no proxy
	}
	secs := max(1, int(d.Seconds())-1)
	errs := make(chan error, len(t.admin))
	for i, admin := range t.admin {
		file := filepath.Join(e.o.out, fmt.Sprintf("%s-%d.cpu.pprof", name, i))
		go func() {
			errs <- fetchProfile(ctx, "http://"+admin+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), file)
		}()
	}
	return func() error {
		var all []error
		for range t.admin {
			all = append(all, <-errs)
		}
		for i, admin := range t.admin {
			file := filepath.Join(e.o.out, fmt.Sprintf("%s-%d.allocs.pprof", name, i))
			all = append(all, fetchProfile(ctx, "http://"+admin+"/debug/pprof/allocs", file))
		}
		if err := errors.Join(all...); err != nil {
			return fmt.Errorf("profile %s: %w", name, err)
		}
		fmt.Printf("  profiles: %s/%s-*.pprof\n", e.o.out, name)
		return nil
	}
}

func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
