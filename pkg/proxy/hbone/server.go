package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Certificate is the destination workload's certificate (called per
	// connection). Roots verify the client certificates, which are required.
	Certificate func() (*tls.Certificate, error)
	Roots       func() *x509.CertPool
	// Handle is called per CONNECT with the verified peer SPIFFE ID and
	// returns the upstream connection, or an error: a *StatusError answers
	// its Code (403 for an authorization denial, 503/502 for a dial failure,
	// as ztunnel's inbound.rs), any other error 503.
	Handle func(ctx context.Context, r *Request) (net.Conn, error)
	// MaxConcurrentStreams per connection (0: DefaultServerMaxStreams,
	// ztunnel's h2 server max_concurrent_streams); over it REFUSED_STREAM.
	MaxConcurrentStreams uint32
	// TrustDomain, when set, is the trust domain client identities must be
	// in (ztunnel's verify_trust_domain).
	TrustDomain string
	// HandshakeTimeout bounds TLS and the HTTP/2 preface and settings of a
	// connection (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// DrainTimeout bounds Close's wait for open streams (0: DefaultDrainTimeout).
	DrainTimeout time.Duration
	// KeepAlive: PINGs on every connection (zero: ztunnel's).
	KeepAlive KeepAlive
	// Logger gets refused handshakes (nil: slog.Default()).
	Logger *slog.Logger
}

// Server terminates HBONE: mutual TLS, then CONNECT streams handed to
// Handle and piped to the connection it returns. Goroutines: one per
// connection reading frames, two per stream (its Handle call then the
// stream-to-upstream copy, and the upstream-to-stream copy), as ztunnel's
// copy_bidirectional.
type Server struct {
	o      ServerOptions
	tls    *tls.Config
	ctx    context.Context // handlers' contexts; cancelled when Close ends
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	streams   sync.WaitGroup
}

// NewServer makes a Server.
func NewServer(o ServerOptions) *Server {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultServerMaxStreams
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	o.KeepAlive = o.KeepAlive.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{o: o, tls: serverTLS(o.Certificate, o.Roots, o.TrustDomain), ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
}

// Serve accepts connections on l until Close (then ErrServerClosed).
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return fmt.Errorf("hbone: accept: %w", err)
		}
		go s.serveConn(nc)
	}
}

// serveConn handshakes TLS and HTTP/2 within HandshakeTimeout; then the
// connection's read loop serves it.
func (s *Server) serveConn(nc net.Conn) {
	nc.SetDeadline(time.Now().Add(s.o.HandshakeTimeout))
	batch := &coalescer{Conn: nc}
	tc := tls.Server(batch, s.tls)
	if err := tc.Handshake(); err != nil {
		s.o.Logger.Info("hbone: TLS handshake refused", "remote", nc.RemoteAddr().String(), "error", err)
		nc.Close()
		return
	}
	cs := tc.ConnectionState()
	pid, err := peerID(cs)
	if err == nil {
		err = checkALPN(cs)
	}
	if err != nil {
		s.o.Logger.Info("hbone: connection refused", "remote", nc.RemoteAddr().String(), "error", err)
		tc.Close()
		return
	}
	var c *conn
	c, err = newConn(tc, connOptions{batch: batch, ping: s.o.KeepAlive, label: "hbone " + nc.RemoteAddr().String() + " peer " + pid,
		maxStreams: s.o.MaxConcurrentStreams,
		newStream: func(st *stream, f *http2.MetaHeadersFrame) {
			req, code := requestOf(st, pid, f) // f is only valid until the next frame
			s.streams.Add(1)
			go s.serveStream(st, req, code)
		},
		onClose: s.forget})
	if err != nil {
		s.o.Logger.Info("hbone: connection refused", "remote", nc.RemoteAddr().String(), "peer", pid, "error", err)
		tc.Close()
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	if closed {
		c.sendGoAway(http2.ErrCodeNo)
	}
	go c.readLoop()
	select {
	case <-c.settings:
		tc.SetDeadline(time.Time{})
	case <-c.done:
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serveStream checks the CONNECT as ztunnel's build_inbound_request, calls
// Handle, answers, and pipes.
func (s *Server) serveStream(st *stream, req *Request, code int) {
	defer s.streams.Done()
	if code != 0 {
		st.respond(code, true)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	st.c.mu.Lock()
	st.onReset = cancel
	st.c.mu.Unlock()
	up, err := s.o.Handle(ctx, req)
	if err != nil {
		code := http.StatusServiceUnavailable
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		st.respond(code, true)
		return
	}
	if err := st.respond(http.StatusOK, false); err != nil {
		up.Close()
		st.Close()
		return
	}
	pipe(st, up)
}

// requestOf reads a CONNECT (RFC 9113 8.5: :method CONNECT and :authority
// host:port, no :scheme or :path). Not CONNECT: 405; a bad authority: 400
// (ztunnel answers 400 to both).
func requestOf(st *stream, pid string, f *http2.MetaHeadersFrame) (*Request, int) {
	if f.PseudoValue("method") != http.MethodConnect {
		return nil, http.StatusMethodNotAllowed
	}
	if f.PseudoValue("scheme") != "" || f.PseudoValue("path") != "" || f.PseudoValue("protocol") != "" {
		return nil, http.StatusBadRequest
	}
	auth := f.PseudoValue("authority")
	host, port, err := net.SplitHostPort(auth)
	if err != nil || host == "" {
		return nil, http.StatusBadRequest
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, http.StatusBadRequest
	}
	h := http.Header{}
	for _, hf := range f.RegularFields() {
		h.Add(hf.Name, hf.Value)
	}
	return &Request{Authority: auth, PeerID: pid, RemoteAddr: st.RemoteAddr(), LocalAddr: st.LocalAddr(), Header: h}, 0
}

// respond answers the CONNECT. An answer that ends the stream while the
// client's side is open is followed by RST_STREAM(NO_ERROR) (RFC 9113 8.1),
// freeing the slot.
func (st *stream) respond(code int, end bool) error {
	c := st.c
	c.mu.Lock()
	if st.resetErr != nil {
		err := st.resetErr
		c.mu.Unlock()
		return err
	}
	open := !st.remoteEnd
	if end {
		st.localEnd = true
		st.resetLocked(fmt.Errorf("%s: answered %d", c.label, code))
		c.removeLocked(st)
	}
	c.mu.Unlock()
	err := c.writeHeaders(st.id, end, []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(code)}})
	if err == nil && end && open {
		c.writeReset(st.id, http2.ErrCodeNo)
	}
	return err
}

// Close stops accepting, sends GOAWAY on every connection, waits up to
// DrainTimeout for their streams to finish, then closes everything.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.sendGoAway(http2.ErrCodeNo)
	}
	deadline := time.Now().Add(s.o.DrainTimeout)
	for time.Now().Before(deadline) && open(conns) {
		time.Sleep(5 * time.Millisecond)
	}
	s.cancel()
	for _, c := range conns {
		c.fail(ErrServerClosed)
	}
	s.streams.Wait()
	return nil
}

func open(conns []*conn) bool {
	for _, c := range conns {
		if c.streamCount() > 0 {
			return true
		}
	}
	return false
}
