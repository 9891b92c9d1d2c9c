package hbone

import (
	"net"
	"sync"
)

// coalescer sits under TLS and gathers the records one frame batch makes
// into one write: Go's crypto/tls writes each record (at most 16 KiB of
// payload) with its own Write on the connection, so a 32 KiB flush cost
// three syscalls. While held (the connection's writer between hold and
// release), writes are appended; release writes them at once. Writes
// outside a hold (the handshake, alerts) go straight through; any write
// TLS makes from another goroutine during a hold (a KeyUpdate answer)
// lands in the buffer in the order TLS made it.
type coalescer struct {
	net.Conn
	mu   sync.Mutex
	held bool
	buf  []byte
}

// maxKept bounds the buffer kept between batches.
const maxKept = 256 << 10

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// hold starts a batch.
func (c *coalescer) hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// release ends the batch and writes what it gathered; its error is the
// batch's (TLS saw its writes succeed).
func (c *coalescer) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > maxKept {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}
