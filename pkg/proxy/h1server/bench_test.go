package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkServe serves keep-alive GETs with a 1 KiB answer, by net/http's
// server first and then by this one, in one run: the ratio is the figure
// (the raw client is the same for both; allocations count both sides).
func BenchmarkServe(b *testing.B) {
	body := make([]byte, 1024)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		w.Write(body)
	})
	run := func(b *testing.B, addr string) {
		b.RunParallel(func(pb *testing.PB) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			req := []byte("GET /x HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
			for pb.Next() {
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
	b.Run("net-http", func(b *testing.B) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(lis)
		defer srv.Close()
		b.ReportAllocs()
		run(b, lis.Addr().String())
	})
	b.Run("h1server", func(b *testing.B) {
		b.ReportAllocs()
		run(b, serve(b, &Server{Handler: h}, nil))
	})
}
