package h1server

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// connReader is what the connection's bufio.Reader reads from, as
// net/http's connReader (server.go): it bounds how much a request head may
// read (setReadLimit), and it can keep one Read blocked in the background
// while a handler runs, so a client that goes away is noticed (the
// request's context is cancelled). Unlike net/http, the background read is
// not started for every request: only a request still in its handler after
// Server.WatchAfter has one (see conn.watch).
type connReader struct {
	rwc net.Conn
	// lost is called (under mu) when a read fails while a request is
	// being served: the client has gone.
	lost func()

	mu      sync.Mutex
	cond    sync.Cond
	hasByte bool
	byteBuf [1]byte
	inRead  bool
	aborted bool  // set before the deadline is moved into the past
	remain  int64 // bytes a request head may still read
	// scan counts a request head's Host lines as they are read
	// (http.ReadRequest drops the field, so duplicates could not be told).
	scan headScan
}

// headScan counts the Host field lines of a request head from its raw
// bytes, up to the empty line that ends it, and keeps the first one's
// value (http.ReadRequest replaces it by an absolute target's host).
type headScan struct {
	active, match, cr, inHost bool
	// hostCont: the Host line just ended; a line starting with a space
	// or tab continues it (obs-fold, which textproto joins).
	hostCont   bool
	col, hosts int
	host       []byte
}

const hostPrefix = "host:"

func (s *headScan) begin() {
	*s = headScan{active: true, match: true, host: s.host[:0]}
}

func (s *headScan) feed(p []byte) {
	for len(p) > 0 && s.active {
		b := p[0]
		p = p[1:]
		if b == '\n' {
			if s.col == 0 || (s.col == 1 && s.cr) {
				s.active = false // the empty line: the head ends
				return
			}
			s.hostCont = s.inHost
			s.col, s.match, s.cr, s.inHost = 0, true, false, false
			continue
		}
		if s.col == 0 && s.hostCont {
			s.hostCont = false
			if b == ' ' || b == '\t' {
				s.inHost, s.match = true, false
			}
		}
		s.cr = s.col == 0 && b == '\r'
		s.col++
		if s.inHost {
			if s.col == 1 && len(s.host) > 0 {
				s.host = append(s.host, '\n') // a continuation line
			}
			if len(s.host) < maxHostValue {
				s.host = append(s.host, b)
			}
			continue
		}
		if s.match {
			if s.col <= len(hostPrefix) && b|0x20 == hostPrefix[s.col-1] {
				if s.col == len(hostPrefix) {
					s.hosts++
					s.match = false
					s.inHost = s.hosts == 1
				}
				continue
			}
			s.match = false
		}
		if !s.cr {
			// Nothing more to see on this line: on to its end.
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				s.col += len(p)
				return
			}
			s.col += i
			p = p[i:]
		}
	}
}

// hostValue is the first Host line's value as textproto reads it: each
// line trimmed, continuation lines joined by a space, the whole trimmed at
// its start (an empty first line leaves no space before the next).
func (s *headScan) hostValue() string {
	var b strings.Builder
	for i, line := range bytes.Split(s.host, []byte("\n")) {
		line = bytes.Trim(line, " \t\r")
		if i > 0 {
			b.WriteByte(' ')
		}
		b.Write(line)
	}
	return strings.TrimLeft(b.String(), " \t")
}

// maxHostValue bounds the Host value kept (a longer one is refused).
const maxHostValue = 1 << 10

func newConnReader(rwc net.Conn, lost func()) *connReader {
	cr := &connReader{rwc: rwc, lost: lost, remain: math.MaxInt64}
	cr.cond.L = &cr.mu
	return cr
}

// beginHead starts a request head: its Host lines are counted from the
// bytes br already holds and those read next.
func (cr *connReader) beginHead(br *bufio.Reader, limit int64) {
	buffered, _ := br.Peek(br.Buffered())
	cr.mu.Lock()
	defer cr.mu.Unlock()
	cr.remain = limit
	cr.scan.begin()
	cr.scan.feed(buffered)
}

// startBackgroundRead starts the read that notices the client going away
// (or the first byte of a pipelined request, which is kept). It does
// nothing when a byte is already held or a read is in progress.
func (cr *connReader) startBackgroundRead() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.inRead || cr.hasByte {
		return
	}
	cr.inRead = true
	go cr.backgroundRead()
}

func (cr *connReader) backgroundRead() {
	n, err := cr.rwc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		// A pipelined request: kept for the next read, as net/http does
		// since Go 1.11 (a pipelined request is not a client gone).
		cr.hasByte = true
	}
	if ne, ok := err.(net.Error); ok && cr.aborted && ne.Timeout() {
		// The expected error of abortPendingRead.
	} else if err != nil && cr.lost != nil {
		cr.lost()
	}
	cr.aborted = false
	cr.inRead = false
	cr.mu.Unlock()
	cr.cond.Broadcast()
}

// abortPendingRead stops a background read and waits for it to end.
func (cr *connReader) abortPendingRead() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if !cr.inRead {
		return
	}
	cr.aborted = true
	cr.rwc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	cr.rwc.SetReadDeadline(time.Time{})
}

// Read reads from the connection, first the byte a background read kept.
func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	if cr.inRead {
		cr.mu.Unlock()
		// The handler read the body after it ended (the background read
		// only runs then): net/http panics the same way.
		panic("h1server: concurrent read of a request's connection")
	}
	if cr.remain <= 0 {
		cr.mu.Unlock()
		return 0, io.EOF
	}
	if len(p) == 0 {
		cr.mu.Unlock()
		return 0, nil
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.remain--
		if cr.scan.active {
			cr.scan.feed(p[:1])
		}
		cr.mu.Unlock()
		return 1, nil
	}
	cr.inRead = true
	cr.mu.Unlock()
	n, err := cr.rwc.Read(p)
	cr.mu.Lock()
	cr.inRead = false
	if err != nil && cr.lost != nil {
		cr.lost()
	}
	cr.remain -= int64(n)
	if cr.scan.active {
		cr.scan.feed(p[:n])
	}
	cr.mu.Unlock()
	cr.cond.Broadcast()
	return n, err
}

// endHead stops counting and lifts the head's read limit; it returns
// whether the head hit that limit, its Host lines and the first one's
// value (one lock for all of it: this runs for every request).
func (cr *connReader) endHead() (tooLarge bool, hosts int, host string) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	tooLarge = cr.remain <= 0
	cr.remain = math.MaxInt64
	cr.scan.active = false
	if cr.scan.hosts == 0 {
		return tooLarge, 0, ""
	}
	return tooLarge, cr.scan.hosts, cr.scan.hostValue()
}
