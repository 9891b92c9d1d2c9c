package hbone

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// A hundred streams at once over several pooled connections, random sizes,
// some aborted halfway: every completed stream's bytes come back intact,
// and once everything is closed no goroutine is left behind.
func TestStress(t *testing.T) {
	before := runtime.NumGoroutine()
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{maxStreams: 16})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a loaded machine, -race
	defer cancel()
	for i := range 100 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			c, err := f.dialer.Dial(ctx, f.target(up))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := make([]byte, r.IntN(512<<10))
			rand.NewChaCha8([32]byte{byte(i)}).Read(data)
			abort := i%10 == 0
			go func() {
				for p := data; len(p) > 0; {
					n := min(len(p), 1+r.IntN(64<<10))
					if abort && len(p) < len(data)/2 {
						c.Close()
						return
					}
					if _, err := c.Write(p[:n]); err != nil {
						return
					}
					p = p[n:]
				}
				c.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if abort {
				return
			}
			if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
				errs <- fmt.Errorf("stream %d: %d of %d bytes, %v", i, len(got), len(data), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.dials.Load(); n < 2 {
		t.Errorf("%d connections for 100 streams at 16 per connection", n)
	}
	f.dialer.Close()
	f.srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+4 && time.Now().Before(deadline) { // +4: the echo and serve loops
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+4 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
