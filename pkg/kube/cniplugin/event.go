// Package cniplugin is sluice's CNI plugin for ambient mode, as Istio's
// istio-cni plugin (cni/pkg/plugin): the container runtime runs it,
// chained after the cluster's network plugin, while it sets up a pod's
// sandbox; it hands the pod's network namespace and addresses to the node
// agent in the node proxy over a unix socket and returns only once the
// agent answered, so an ambient pod's capture is in place before its
// containers start. An agent that cannot be reached or refuses fails the
// pod's set-up (the runtime retries), rather than letting it start
// uncaptured. The event protocol is istio-cni's (cnieventclient.go:
// POST /cmdadd with the pod's netns, name, namespace and IPs).
package cniplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Paths on the agent's socket (istio-cni's constants.CNIAddEventPath).
const (
	AddPath = "/cmdadd"
	DelPath = "/cmddel"
	// DefaultSocket is where the node agent listens (hostPath shared with
	// the plugin; istio-cni's /var/run/istio-cni/pluginevent.sock).
	DefaultSocket = "/var/run/sluice-cni/pluginevent.sock"
	// maxEvent bounds an event's body.
	maxEvent = 64 << 10
)

// Event is one pod's sandbox set-up or tear-down, as istio-cni's
// CNIPluginAddEvent.
type Event struct {
	ContainerID  string   `json:"containerId"`
	Netns        string   `json:"netns"`
	PodName      string   `json:"podName"`
	PodNamespace string   `json:"podNamespace"`
	PodUID       string   `json:"podUid,omitempty"`
	IPs          []string `json:"ips,omitempty"`
}

// Handler handles an event; an error fails the pod's set-up (ADD) with
// its message.
type Handler func(ctx context.Context, e Event) error

// ServeOptions configure the agent's side.
type ServeOptions struct {
	Add, Del Handler
	// Timeout bounds one event (default 30s; the runtime's own timeout is
	// longer).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Serve answers plugin events on l (a unix socket) until it is closed.
func Serve(l net.Listener, o ServeOptions) error {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	for path, h := range map[string]Handler{AddPath: o.Add, DelPath: o.Del} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			var e Event
			if err := json.NewDecoder(io.LimitReader(r.Body, maxEvent)).Decode(&e); err != nil {
				http.Error(w, "bad event: "+err.Error(), http.StatusBadRequest)
				return
			}
			if e.PodName == "" || e.PodNamespace == "" || e.Netns == "" {
				http.Error(w, "bad event: pod name, namespace and netns are required", http.StatusBadRequest)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), o.Timeout)
			defer cancel()
			if err := h(ctx, e); err != nil {
				o.Logger.Warn("cni event refused", "path", path, "pod", e.PodNamespace+"/"+e.PodName, "err", err)
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// send posts an event to the agent's socket and waits for its answer.
func send(ctx context.Context, socket, path string, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+path, bytesReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("node agent at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("node agent at %s: %s: %s", socket, resp.Status, string(msg))
	}
	return nil
}
