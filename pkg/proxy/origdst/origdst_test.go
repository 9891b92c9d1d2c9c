package origdst

import (
	"net"
	"net/netip"
	"testing"
)

// TestRestore: the restored connection reports its original destination
// as its local address (IPv4-mapped addresses unmapped), says whether it
// was redirected (a destination other than the socket's own address) and
// keeps its TCP connection reachable (half-close, SetLinger).
func TestRestore(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	raw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	dst := netip.MustParseAddrPort("[::ffff:10.1.2.3]:8080")
	rc := Restore(raw, dst)
	if got := rc.LocalAddr().String(); got != "10.1.2.3:8080" || rc.Destination() != netip.MustParseAddrPort("10.1.2.3:8080") || !rc.Redirected {
		t.Errorf("restored: local %s destination %s redirected %v", got, rc.Destination(), rc.Redirected)
	}
	own := netip.MustParseAddrPort(raw.LocalAddr().String())
	if self := Restore(raw, own); self.Redirected {
		t.Errorf("destination %s is the socket's own address: not redirected", own)
	}
	if TCP(rc) == nil || TCP(raw) == nil {
		t.Errorf("TCP: the *net.TCPConn under a restored connection is lost")
	}
	if err := rc.CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
}
