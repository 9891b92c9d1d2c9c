package demo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/demo"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestDemoTraceLink runs `sluice demo`'s mesh (real child processes)
// and follows the trace link it prints while the mesh runs: the trace of
// a request from the client sidecar to product-service, two spans nested.
func TestDemoTraceLink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pw := &linkWriter{link: make(chan string, 1)}
	pr := pw.link
	done := make(chan error, 1)
	go func() {
		_, err := demo.Run(ctx, demo.Options{Binary: testenv.Binary(t), Dir: t.TempDir(), Requests: 20, Wait: true, Out: pw})
		done <- err
	}()
	var link string
	select {
	case link = <-pr:
	case err := <-done:
		t.Fatalf("demo ended: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("no trace link printed in 90 s")
	}
	i := strings.Index(link, "/dashboard/#/trace/")
	api := link[:i] + "/dashboard/api/trace?id=" + link[i+len("/dashboard/#/trace/"):]
	resp, err := http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Spans []struct {
			Service string `json:"service"`
			Depth   int    `json:"depth"`
		} `json:"spans"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Spans) != 2 ||
		page.Spans[0].Service != "demo-client.default" || page.Spans[1].Service != "product-service.default" || page.Spans[1].Depth != 1 {
		t.Errorf("%s: %v %+v", api, err, page)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("demo: %v", err)
	}
	t.Logf("demo output:\n%s", pw.String())
}

// linkWriter keeps the demo's output and sends the trace link it prints.
type linkWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	link chan string
	sent bool
}

const linkPrefix = "Trace of a request (client sidecar -> product-service): "

func (w *linkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	s := w.buf.String()
	if i := strings.Index(s, linkPrefix); i >= 0 && !w.sent {
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			w.sent = true
			w.link <- s[i+len(linkPrefix) : i+j]
		}
	}
	return len(p), nil
}

func (w *linkWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
