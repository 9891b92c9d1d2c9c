package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	_ "embed"
)

// meshConfig is the demo's MeshConfig: the zipkin provider its Telemetry
// (config/tracing.yaml) names.
//
//go:embed mesh.yaml
var meshConfig []byte

func writeMeshConfig(dir string) (string, error) {
	path := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(path, meshConfig, 0o644); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return path, nil
}

// tracesURL is the dashboard's Traces page.
func tracesURL(p ports) string { return dashboardURL(p) + "#/traces" }

// recentTrace waits (up to timeout: proxies send spans at most a second
// after a request) for the collector to list a trace through
// product-service and returns its page on the dashboard.
func recentTrace(ctx context.Context, p ports, timeout time.Duration) (string, error) {
	api := "http://" + addr(p.ControlHTTP) + "/dashboard/api/traces?service=product-service.default&limit=1"
	deadline := time.Now().Add(timeout)
	for {
		var page struct {
			Traces []struct {
				TraceID string `json:"trace_id"`
				Spans   int    `json:"spans"`
			} `json:"traces"`
		}
		resp, err := http.Get(api)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
		}
		if err == nil && len(page.Traces) > 0 && page.Traces[0].Spans >= 2 {
			return dashboardURL(p) + "#/trace/" + page.Traces[0].TraceID, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no trace of product-service reached the collector in %s (err %v)", timeout, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
