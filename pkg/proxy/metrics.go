package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
)

// serveMetrics serves the standard metrics on their own address
// (--metrics-address), at /stats/prometheus as Istio's merged port 15090
// does; stop shuts the server down.
func serveMetrics(addr string, m *istiometrics.Metrics) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
