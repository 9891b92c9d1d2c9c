// Package echo is sluice's test backend, run with "sluice echo". It answers
// every request, whatever the method or path, with a JSON description of who
// answered and what was received, so tests, benchmarks and the conformance
// harness can see exactly what the mesh delivered.
//
// # Protocols
//
// One port serves HTTP/1.1 and cleartext HTTP/2 with prior knowledge (h2c),
// using net/http's own Protocols support. The HTTP/1.1 Upgrade dance to h2c is
// not supported; HTTP/2 clients must speak it from the first byte.
//
// # Response
//
// The body is JSON (Content-Type application/json); the field names are a
// contract that tests and the conformance harness parse:
//
//	{
//	  "service": "reviews", "version": "v1", "namespace": "default", "pod": "reviews-v1",
//	  "request": {
//	    "method": "GET",
//	    "path": "/a/b?x=1",
//	    "host": "reviews:9080",
//	    "proto": "HTTP/1.1",
//	    "headers": {"End-User": ["jason"]},
//	    "remote_addr": "127.0.0.1:5555",
//	    "body_bytes": 0
//	  }
//	}
//
// "path" is the request URI as received, raw query included. "host" is the
// Host header (or :authority), which Go keeps out of "headers"; "headers"
// holds every other header under its canonical name with all its values.
// "body_bytes" counts the request body, which is read and discarded up to
// MaxBodyBytes. Every response, whatever its kind, also carries the headers
// X-Echo-Service, X-Echo-Version and X-Echo-Pod.
//
// # Controls
//
// A request can steer the answer with a query parameter or a request header;
// when both are given the query parameter wins:
//
//	status   ?status=503   X-Echo-Status: 503    answer with this status (100-599); without
//	                                             either, httpbin's path /status/<code> (200-599)
//	delay    ?delay=250ms  X-Echo-Delay: 250ms   wait first (Go duration, capped at MaxDelay)
//	size     ?size=1024    X-Echo-Size: 1024     body is exactly this many 'x' bytes,
//	                                             application/octet-stream, no JSON (capped at MaxSizeBytes)
//
// The header X-Echo-Set-Header: "name:value,name2:value2" adds those headers to
// the response (the Gateway API conformance convention); a name given there
// replaces a header the echo server would set itself, and a name given twice
// gets both values. Malformed entries are ignored.
//
// An invalid control value is answered with 400 and a one-line text/plain
// reason; that includes status 101, which cannot be sent without a real
// protocol switch. Statuses whose responses cannot have a body (204, 304) are
// sent without one. Any other informational status (1xx) is sent as an
// interim response, followed by the normal 200 answer. A delayed request whose
// client goes away is dropped without an answer.
//
// No path is special: /healthz echoes like any other.
package echo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits on what one request may ask for or send.
const (
	// MaxBodyBytes is how much of a request body is read and counted.
	MaxBodyBytes = 64 << 20
	// MaxSizeBytes caps the size control.
	MaxSizeBytes = 64 << 20
	// MaxDelay caps the delay control.
	MaxDelay = 5 * time.Minute
)

// DefaultAddress is where the server listens when Options.Address is empty.
const DefaultAddress = "127.0.0.1:8080"

// shutdownGrace is how long in-flight requests get to finish once the
// context ends, before their connections are closed.
const shutdownGrace = 5 * time.Second

// Options say who the server claims to be and where it listens.
type Options struct {
	// Address to listen on, host:port; ":0" picks a free port. Empty means
	// DefaultAddress.
	Address string
	// Service, Version, Namespace and Pod are the identity reported in every
	// response. Namespace defaults to "default"; Pod defaults to
	// "<service>-<version>", or the service alone when Version is empty.
	Service   string
	Version   string
	Namespace string
	Pod       string
}

// Response is the JSON body of every echo answer (except size answers).
type Response struct {
	Service   string  `json:"service"`
	Version   string  `json:"version"`
	Namespace string  `json:"namespace"`
	Pod       string  `json:"pod"`
	Request   Request `json:"request"`
}

// Request describes the request as the echo server received it.
type Request struct {
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Host       string      `json:"host"`
	Proto      string      `json:"proto"`
	Headers    http.Header `json:"headers"`
	RemoteAddr string      `json:"remote_addr"`
	BodyBytes  int64       `json:"body_bytes"`
}

// Server is an echo backend. Create it with New.
type Server struct {
	opts Options

	// Header values shared by every response; never mutated.
	serviceHdr, versionHdr, podHdr []string

	mu      sync.Mutex
	started bool
	done    chan struct{} // closed when the server started by Start has stopped
	err     error         // why it stopped; read after done is closed
}

// New returns a server for opts, with the defaults described on Options
// filled in.
func New(opts Options) *Server {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.Pod == "" {
		opts.Pod = DefaultPod(opts.Service, opts.Version)
	}
	return &Server{
		opts:       opts,
		serviceHdr: []string{opts.Service},
		versionHdr: []string{opts.Version},
		podHdr:     []string{opts.Pod},
	}
}

// DefaultPod is the pod name used when none is given: "<service>-<version>",
// or just the service when version is empty.
func DefaultPod(service, version string) string {
	if version == "" {
		return service
	}
	return service + "-" + version
}

// Options returns the options the server runs with, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Handler returns the echo handler, for use in-process without a listener.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// ListenAndServe listens on the configured address and serves until ctx
// ends, then shuts down gracefully. It returns nil after a clean shutdown.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if _, err := s.Start(ctx); err != nil {
		return err
	}
	return s.Wait()
}

// Start listens on the configured address and serves in the background until
// ctx ends, then shuts down gracefully. It returns the bound address, which
// tells the port chosen for ":0". A Server can be started once; Wait reports
// when it has stopped.
func (s *Server) Start(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return "", errors.New("echo: server already started")
	}
	s.started = true
	s.done = make(chan struct{})
	s.mu.Unlock()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Address)
	if err != nil {
		// Drop net.OpError's own "listen tcp ADDR" prefix: the address is
		// named once, and errors.Is still sees the cause (EADDRINUSE, ...).
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		err = fmt.Errorf("echo: cannot listen on %s: %w", s.opts.Address, err)
		s.err = err
		close(s.done)
		return "", err
	}
	go func() {
		s.err = s.serve(ctx, ln)
		close(s.done)
	}()
	return ln.Addr().String(), nil
}

// Wait blocks until the server started by Start has shut down and returns
// what stopped it: nil after a clean shutdown on the end of its context.
// It returns an error at once if the server was never started.
func (s *Server) Wait() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return errors.New("echo: server not started")
	}
	<-done
	return s.err
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           s.Handler(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("echo: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// In-flight requests (long delays) did not finish in time.
		srv.Close()
		err = fmt.Errorf("echo: graceful shutdown: %w", err)
	}
	<-errc // http.ErrServerClosed
	return err
}

// bufPool holds buffers for encoding JSON responses.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf keeps buffers grown by unusually large requests out of the pool.
const maxPooledBuf = 64 << 10

var (
	jsonContentType  = []string{"application/json"}
	octetContentType = []string{"application/octet-stream"}
	textContentType  = []string{"text/plain; charset=utf-8"}
	noSniff          = []string{"nosniff"}
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Echo-Service"] = s.serviceHdr
	h["X-Echo-Version"] = s.versionHdr
	h["X-Echo-Pod"] = s.podHdr

	// Read the body first, so it is counted and the connection stays
	// reusable whatever the answer.
	// r.Body is never nil from a server, but can be in-process.
	var bodyBytes int64
	if r.Body != nil {
		bodyBytes, _ = io.Copy(io.Discard, io.LimitReader(r.Body, MaxBodyBytes))
	}

	c, err := parseControls(r)
	if err != nil {
		h["Content-Type"] = textContentType
		h["X-Content-Type-Options"] = noSniff
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, err.Error()+"\n")
		return
	}
	if c.setHeaders != "" {
		applySetHeaders(h, c.setHeaders)
	}
	if c.delay > 0 {
		t := time.NewTimer(c.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client went away; nobody to answer
		}
	}

	status := http.StatusOK
	if c.status != 0 {
		status = c.status
		if status < 200 { // 101 is refused by parseControls
			// Informational: send it as an interim response, then answer.
			w.WriteHeader(status)
			status = http.StatusOK
		}
	}
	body := bodyAllowed(status)

	if c.hasSize {
		setDefault(h, "Content-Type", octetContentType)
		if body {
			h["Content-Length"] = []string{strconv.FormatInt(c.size, 10)}
		}
		w.WriteHeader(status)
		if body && r.Method != http.MethodHead {
			writePadding(w, c.size)
		}
		return
	}

	if !body {
		w.WriteHeader(status)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	headers := r.Header
	if headers == nil {
		headers = http.Header{}
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&Response{
		Service:   s.opts.Service,
		Version:   s.opts.Version,
		Namespace: s.opts.Namespace,
		Pod:       s.opts.Pod,
		Request: Request{
			Method:     r.Method,
			Path:       r.RequestURI,
			Host:       r.Host,
			Proto:      r.Proto,
			Headers:    headers,
			RemoteAddr: r.RemoteAddr,
			BodyBytes:  bodyBytes,
		},
	}); err != nil {
		// Cannot happen for these types; answer rather than hang up.
		http.Error(w, "echo: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	setDefault(h, "Content-Type", jsonContentType)
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// setDefault sets a header unless X-Echo-Set-Header already set it.
func setDefault(h http.Header, name string, v []string) {
	if _, ok := h[name]; !ok {
		h[name] = v
	}
}

// bodyAllowed reports whether a response with this status may carry a body.
func bodyAllowed(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

// padding is the shared source of size-control bodies.
var padding = bytes.Repeat([]byte{'x'}, 32<<10)

func writePadding(w io.Writer, n int64) {
	for n > 0 {
		chunk := padding
		if n < int64(len(chunk)) {
			chunk = chunk[:n]
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		n -= int64(len(chunk))
	}
}
