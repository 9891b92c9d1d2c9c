package hbone

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkHBONE measures one HBONE stream against plain mutual TLS over
// the same loopback in the same run. The baseline is a TLS-terminating
// proxy piping to the same plaintext upstream (the same hop HBONE's server
// makes), so the ratios isolate HTTP/2 framing, flow control and pooling:
//
//	throughput: 64 KiB writes to a sink, then a half-close and its ack;
//	  hbone/tls-throughput > 1 means HBONE moved bytes faster.
//	rr: 64-byte request, 64-byte answer, on one open stream;
//	  hbone/tls-latency > 1 means an HBONE round trip took longer.
func BenchmarkHBONE(b *testing.B) {
	sink := serveTCP(b, func(c *net.TCPConn) {
		io.Copy(io.Discard, c)
		c.Write([]byte{1})
	})
	echoAddr := serveTCP(b, echo)
	f := newFixture(b, fixtureOptions{})
	cert, _ := f.mesh.issue(b, "ns-a", "client")
	ctls := clientTLS(certFunc(cert), f.mesh.rootsFunc(), []string{f.serverID})
	tlsSink, tlsEcho := tlsProxy(b, f, sink), tlsProxy(b, f, echoAddr)
	dialTLS := func(addr string) func() net.Conn {
		return func() net.Conn {
			c, err := tls.Dial("tcp", addr, ctls)
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
	}
	dialHBONE := func(addr string) func() net.Conn {
		return func() net.Conn {
			c, err := f.dialer.Dial(ctxT(b), f.target(addr))
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
	}
	b.Run("throughput", func(b *testing.B) {
		const chunk = 64 << 10
		b.SetBytes(chunk)
		b.StopTimer()
		tlsTime := transfer(b, dialTLS(tlsSink), b.N, chunk)
		b.StartTimer()
		start := time.Now()
		transfer(b, dialHBONE(sink), b.N, chunk)
		hboneTime := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)*chunk/tlsTime.Seconds()/1e6, "tls-MB/s")
		b.ReportMetric(tlsTime.Seconds()/hboneTime.Seconds(), "hbone/tls-throughput")
	})
	b.Run("rr", func(b *testing.B) {
		b.StopTimer()
		tlsTime := roundTrips(b, dialTLS(tlsEcho), b.N)
		b.StartTimer()
		start := time.Now()
		roundTrips(b, dialHBONE(echoAddr), b.N)
		hboneTime := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(tlsTime.Nanoseconds())/float64(b.N), "tls-ns/rr")
		b.ReportMetric(hboneTime.Seconds()/tlsTime.Seconds(), "hbone/tls-latency")
	})
}

func transfer(b *testing.B, dial func() net.Conn, n, chunk int) time.Duration {
	buf := make([]byte, chunk)
	start := time.Now()
	c := dial()
	defer c.Close()
	for range n {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func roundTrips(b *testing.B, dial func() net.Conn, n int) time.Duration {
	c := dial()
	defer c.Close()
	req, resp := make([]byte, 64), make([]byte, 64)
	start := time.Now()
	for range n {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// tlsProxy terminates the fixture server's mTLS and pipes to upstream.
func tlsProxy(b *testing.B, f *fixture, upstream string) string {
	srvCert, _ := f.mesh.issue(b, "ns-b", "server")
	l, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS(certFunc(srvCert), f.mesh.rootsFunc(), ""))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					copyBuf(c, up)
					c.(*tls.Conn).CloseWrite()
					close(done)
				}()
				copyBuf(up, c)
				up.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return l.Addr().String()
}
