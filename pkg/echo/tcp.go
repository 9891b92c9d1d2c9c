package echo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// TCPOptions configure a line echo server, Istio's tcp-echo sample: every
// line a client sends comes back prefixed with Prefix and a space.
type TCPOptions struct {
	Address string
	Prefix  string
}

// TCPServer is a running line echo server.
type TCPServer struct {
	opts TCPOptions
	ln   net.Listener
	wg   sync.WaitGroup
}

// maxLine bounds one line, so a client cannot make the server buffer
// without end.
const maxLine = 1 << 20

// StartTCP listens and serves in the background until ctx ends.
func StartTCP(ctx context.Context, opts TCPOptions) (*TCPServer, error) {
	ln, err := net.Listen("tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("echo: cannot listen on %s: %w", opts.Address, err)
	}
	s := &TCPServer{opts: opts, ln: ln}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	s.wg.Add(1)
	go s.accept(ctx)
	return s, nil
}

// Addr is the bound address.
func (s *TCPServer) Addr() string { return s.ln.Addr().String() }

// Wait returns once the server has stopped and its connections closed.
func (s *TCPServer) Wait() { s.wg.Wait() }

func (s *TCPServer) accept(ctx context.Context) {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, conn)
		}()
	}
}

func (s *TCPServer) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 4096), maxLine)
	w := bufio.NewWriter(conn)
	for sc.Scan() {
		if s.opts.Prefix != "" {
			w.WriteString(s.opts.Prefix)
			w.WriteByte(' ')
		}
		w.Write(sc.Bytes())
		w.WriteByte('\n')
		if err := w.Flush(); err != nil {
			return
		}
	}
}
