package tracestore

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCollectorConcurrent: proxies posting while the dashboard reads
// (run with -race); the bounds hold throughout and every post is
// answered.
func TestCollectorConcurrent(t *testing.T) {
	st := New(Options{MaxTraces: 50, MaxSpans: 90})
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	now := time.Now().UnixMicro()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				tid := fmt.Sprintf("%016x%016x", w+1, i+1)
				body := "[" + spanJSON(tid, "0000000000000001", "", "a.default", "op", now, 10, "") + "," +
					spanJSON(tid, "0000000000000002", "0000000000000001", "b.default", "op", now+1, 5, "") + "]"
				resp, err := http.Post(srv.URL+"/api/v2/spans", "application/json", bytes.NewReader([]byte(body)))
				if err != nil || resp.StatusCode != 202 {
					t.Errorf("post: %v %v", err, resp)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, tr := range st.Traces(Query{Limit: 100}) {
				Summarize(tr)
				Waterfall(tr)
			}
			st.Services()
			if s := st.Stats(); s.Traces > 50 || s.Spans > 90 {
				t.Errorf("over the bounds: %+v", s)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	s := st.Stats()
	if s.SpansAccepted != 800 || s.Spans != 90 || s.Traces != 45 || s.TracesEvicted != 355 {
		t.Errorf("after 400 two-span traces: %+v", s)
	}
	if got := strings.Join(st.Services(), ","); got != "a.default,b.default" {
		t.Errorf("services %s", got)
	}
}

// BenchmarkCollectorPost is one proxy report of 20 spans posted to the
// collector (decode and store), as the proxies' batch exporter sends.
func BenchmarkCollectorPost(b *testing.B) {
	st := New(Options{})
	h := st.Handler()
	var spans []string
	for i := 0; i < 20; i++ {
		spans = append(spans, spanJSON(fmt.Sprintf("%032x", i+1), "0000000000000001", "", "productpage.default", "productpage.default.svc.cluster.local:9080/*",
			time.Now().UnixMicro(), 1200, `"component":"proxy","http.method":"GET","http.status_code":"200","node_id":"sidecar~10.0.0.1~productpage-v1.default~default.svc.cluster.local"`))
	}
	body := []byte("[" + strings.Join(spans, ",") + "]")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/api/v2/spans", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 202 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
