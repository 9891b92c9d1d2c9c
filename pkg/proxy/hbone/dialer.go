package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// DialerOptions configure a Dialer.
type DialerOptions struct {
	// Certificate returns the source workload's certificate (called per new
	// connection, so a rotation applies to new connections). Roots returns
	// the trust bundle.
	Certificate func() (*tls.Certificate, error)
	Roots       func() *x509.CertPool
	// IdleTimeout closes a pooled connection unused this long (0:
	// DefaultIdleTimeout, ztunnel's POOL_UNUSED_RELEASE_TIMEOUT).
	IdleTimeout time.Duration
	// DialContext makes the TCP connection (nil: a net.Dialer).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxStreamsPerConn caps the streams on one connection (0:
	// DefaultMaxStreamsPerConn); the server's SETTINGS_MAX_CONCURRENT_STREAMS
	// caps it further.
	MaxStreamsPerConn int
	// HandshakeTimeout bounds TCP, TLS and the HTTP/2 settings exchange of a
	// new connection (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// KeepAlive: PINGs on pooled connections (zero: ztunnel's).
	KeepAlive KeepAlive
}

// Dialer opens HBONE streams, pooling HTTP/2 connections as ztunnel's
// WorkloadHBONEPool (src/proxy/pool.rs): one set of connections per
// (source identity, destination address, acceptable peer identities),
// streams multiplexed on a connection up to the server's
// MAX_CONCURRENT_STREAMS (and MaxStreamsPerConn), a new connection when all
// are full, one connection dialled at a time per key (its
// established_conn_writelock), and a connection closed after IdleTimeout
// without streams.
type Dialer struct {
	o      DialerOptions
	mu     sync.Mutex
	pools  map[poolKey]*keyPool
	closed bool
}

type poolKey struct{ src, addr, peers string }

type keyPool struct { // under Dialer.mu
	conns []*conn
	dial  *dialCall // the connection being dialled, if any
}

// NewDialer makes a Dialer.
func NewDialer(o DialerOptions) *Dialer {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxStreamsPerConn <= 0 {
		o.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	o.KeepAlive = o.KeepAlive.withDefaults()
	if o.DialContext == nil {
		o.DialContext = (&net.Dialer{}).DialContext
	}
	return &Dialer{o: o, pools: map[poolKey]*keyPool{}}
}

// Dial opens a CONNECT stream to t.Authority through t.Addr. The stream is
// a net.Conn with CloseWrite (END_STREAM); a non-200 answer is a
// *StatusError. A stream the server refused unprocessed (REFUSED_STREAM,
// GOAWAY) is retried on another connection.
func (d *Dialer) Dial(ctx context.Context, t Target) (net.Conn, error) {
	fields, err := requestFields(t)
	if err != nil {
		return nil, fmt.Errorf("hbone %s: %w", t.Addr, err)
	}
	for range 3 {
		var c *conn
		c, err = d.reserve(ctx, t)
		if err != nil {
			return nil, err
		}
		var s *stream
		s, err = c.open(ctx, t.Authority, fields)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errRefused) {
			return nil, err
		}
	}
	return nil, err
}

// requestFields are the CONNECT's header fields (RFC 9113 8.5: :method and
// :authority only), the extra headers lower-cased and checked.
func requestFields(t Target) ([]hpack.HeaderField, error) {
	if len(t.PeerIDs) == 0 {
		return nil, errors.New("target has no acceptable peer identity")
	}
	if _, _, err := net.SplitHostPort(t.Authority); err != nil {
		return nil, fmt.Errorf("authority %q: %w", t.Authority, err)
	}
	fields := []hpack.HeaderField{{Name: ":method", Value: "CONNECT"}, {Name: ":authority", Value: t.Authority}}
	for k, vs := range t.Header {
		name := strings.ToLower(k)
		if !httpguts.ValidHeaderFieldName(name) || strings.HasPrefix(name, ":") {
			return nil, fmt.Errorf("header %q: invalid name", k)
		}
		switch name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host":
			return nil, fmt.Errorf("header %q: not allowed in HTTP/2 (RFC 9113 8.2.2)", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("header %q: invalid value", k)
			}
			fields = append(fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
	return fields, nil
}

func keyOf(t Target) poolKey {
	peers := slices.Clone(t.PeerIDs)
	slices.Sort(peers)
	return poolKey{src: t.SourceID, addr: t.Addr, peers: strings.Join(peers, ",")}
}

// reserve returns a connection with one stream slot taken for the caller.
// Without room, one connection is dialled per key at a time, detached from
// any one caller's context (bounded by HandshakeTimeout); callers waiting
// for it share its outcome, so a dead destination costs one handshake
// timeout, not one per caller.
func (d *Dialer) reserve(ctx context.Context, t Target) (*conn, error) {
	key := keyOf(t)
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, fmt.Errorf("hbone %s: dialer closed", t.Addr)
		}
		kp := d.pools[key]
		if kp == nil {
			kp = &keyPool{}
			d.pools[key] = kp
		}
		if c := d.pickLocked(kp); c != nil {
			d.mu.Unlock()
			return c, nil
		}
		call := kp.dial
		if call == nil {
			call = &dialCall{done: make(chan struct{})}
			kp.dial = call
			go d.dialFor(context.WithoutCancel(ctx), t, key, kp, call)
		}
		d.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("hbone %s: waiting for a connection: %w", t.Addr, ctx.Err())
		}
		if call.err != nil {
			return nil, call.err
		}
		// A new connection: take a slot on it (or dial again if it is full).
	}
}

// dialCall is one connection being dialled for a key.
type dialCall struct {
	done chan struct{}
	err  error
}

func (d *Dialer) dialFor(ctx context.Context, t Target, key poolKey, kp *keyPool, call *dialCall) {
	c, err := d.connect(ctx, t, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	kp.dial = nil
	if err == nil && d.closed {
		c.fail(errors.New("dialer closed"))
		err = fmt.Errorf("hbone %s: dialer closed", t.Addr)
	}
	if err == nil {
		kp.conns = append(kp.conns, c)
		d.pools[key] = kp // it may have been dropped while empty
	} else if len(kp.conns) == 0 && d.pools[key] == kp {
		delete(d.pools, key)
	}
	call.err = err
	close(call.done)
}

// pickLocked takes a stream slot on a usable connection with room.
func (d *Dialer) pickLocked(kp *keyPool) *conn {
	for _, c := range kp.conns {
		c.mu.Lock()
		ok := c.usableLocked() && c.active < min(d.o.MaxStreamsPerConn, int(c.peerMaxStreams))
		if ok {
			c.active++
		}
		c.mu.Unlock()
		if ok {
			return c
		}
	}
	return nil
}

// connect dials, handshakes TLS (the server identity verified) and
// exchanges HTTP/2 settings, all within HandshakeTimeout.
func (d *Dialer) connect(ctx context.Context, t Target, key poolKey) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.o.HandshakeTimeout)
	defer cancel()
	raw, err := d.o.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("hbone %s: dial: %w", t.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	batch := &coalescer{Conn: raw}
	tc := tls.Client(batch, clientTLS(sourceCert(d.o.Certificate, t.SourceID), d.o.Roots, t.PeerIDs))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("hbone %s: TLS: %w", t.Addr, err)
	}
	cs := tc.ConnectionState()
	pid, err := peerID(cs)
	if err == nil {
		err = checkALPN(cs)
	}
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("hbone %s: %w", t.Addr, err)
	}
	c, err := newConn(tc, connOptions{client: true, batch: batch, ping: d.o.KeepAlive, label: "hbone " + t.Addr + " peer " + pid,
		onClose: func(c *conn) { d.forget(key, c) }})
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("hbone %s: HTTP/2 preface: %w", t.Addr, err)
	}
	c.idleTimeout = d.o.IdleTimeout
	c.idleTimer = time.AfterFunc(d.o.IdleTimeout, func() { d.idleCheck(c) })
	go c.readLoop()
	select {
	case <-c.settings:
	case <-ctx.Done():
	}
	c.mu.Lock()
	err = c.err
	if err == nil && !c.gotSettings {
		err = fmt.Errorf("%s: no SETTINGS: %w", c.label, ctx.Err())
	}
	c.mu.Unlock()
	if err != nil {
		c.fail(err)
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return c, nil
}

// idleCheck closes a connection without streams for IdleTimeout: no new
// stream can take it once goAway is set under its lock.
func (d *Dialer) idleCheck(c *conn) {
	c.mu.Lock()
	if c.active > 0 || c.err != nil {
		c.mu.Unlock()
		return
	}
	if rest := c.idleTimeout - time.Since(c.idleSince); rest > 0 {
		c.idleTimer.Reset(rest)
		c.mu.Unlock()
		return
	}
	c.goAway = true
	c.mu.Unlock()
	c.writeFrames(func(fr *http2.Framer) error { return fr.WriteGoAway(0, http2.ErrCodeNo, nil) })
	c.fail(errors.New("idle"))
}

// forget drops an ended connection from its pool.
func (d *Dialer) forget(key poolKey, c *conn) {
	c.idleTimer.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	kp := d.pools[key]
	if kp == nil {
		return
	}
	kp.conns = slices.DeleteFunc(kp.conns, func(x *conn) bool { return x == c })
	if len(kp.conns) == 0 && kp.dial == nil {
		delete(d.pools, key)
	}
}

// Close closes every pooled connection; their streams fail.
func (d *Dialer) Close() error {
	d.mu.Lock()
	d.closed = true
	var all []*conn
	for _, kp := range d.pools {
		all = append(all, kp.conns...)
	}
	d.mu.Unlock()
	for _, c := range all {
		c.sendGoAway(http2.ErrCodeNo)
		c.fail(errors.New("dialer closed"))
	}
	return nil
}

// open sends the CONNECT on a reserved slot and waits for the answer.
func (c *conn) open(ctx context.Context, authority string, fields []hpack.HeaderField) (*stream, error) {
	c.wmu.Lock() // stream ids go out in order
	c.mu.Lock()
	if !c.usableLocked() {
		c.releaseLocked()
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, fmt.Errorf("%s: %w", c.label, errRefused)
	}
	s := newStream(c, c.nextID)
	c.nextID += 2
	c.streams[s.id] = s
	c.mu.Unlock()
	err := c.writeHeadersLocked(s.id, false, fields)
	c.wmu.Unlock()
	if err != nil {
		s.reset(http2.ErrCodeInternal, err)
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		s.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	for !s.respDone && ctx.Err() == nil {
		s.cond.Wait()
	}
	status, respDone, resetErr := s.status, s.respDone, s.resetErr
	c.mu.Unlock()
	switch {
	case status != 0 && status != 200: // an answer, maybe followed by RST_STREAM(NO_ERROR)
		s.Close()
		return nil, fmt.Errorf("%s: CONNECT %s: %w", c.label, authority, &StatusError{Code: status})
	case resetErr != nil:
		return nil, fmt.Errorf("CONNECT %s: %w", authority, resetErr)
	case !respDone:
		s.reset(http2.ErrCodeCancel, ctx.Err())
		return nil, fmt.Errorf("%s: CONNECT %s: %w", c.label, authority, ctx.Err())
	}
	return s, nil
}
