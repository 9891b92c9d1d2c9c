package hostport

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct{ in, host, port string }{
		{"reviews", "reviews", ""},
		{"reviews:9080", "reviews", "9080"},
		{"reviews:", "reviews", ""},
		{":15001", "", "15001"},
		{"10.0.0.1:80", "10.0.0.1", "80"},
		{"[::1]:8080", "[::1]", "8080"},
		{"[::1]", "[::1]", ""},
		{"[fe80::1%eth0]:443", "[fe80::1%eth0]", "443"},
		{"::1", "::1", ""},
		{"fe80::1:80", "fe80::1:80", ""}, // bare IPv6: no port
		{"", "", ""},
	}
	for _, c := range cases {
		h, p := Split(c.in)
		if h != c.host || p != c.port {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", c.in, h, p, c.host, c.port)
		}
		if got := StripPort(c.in); got != c.host {
			t.Errorf("StripPort(%q) = %q, want %q", c.in, got, c.host)
		}
	}
}

func TestParseAddr(t *testing.T) {
	cases := []struct {
		in      string
		host    string
		port    uint32
		wantErr string
	}{
		{"127.0.0.1:15001", "127.0.0.1", 15001, ""},
		{":8080", "0.0.0.0", 8080, ""},
		{"[::]:80", "::", 80, ""},
		{"[::1]:0", "::1", 0, ""},
		{"localhost:65535", "localhost", 65535, ""},
		{"127.0.0.1", "", 0, `address "127.0.0.1" has no port`},
		{"::1", "", 0, `address "::1" has no port`},
		{"[::1]", "", 0, `address "[::1]" has no port`},
		{"127.0.0.1:65536", "", 0, `address "127.0.0.1:65536": bad port`},
		{"127.0.0.1:http", "", 0, `address "127.0.0.1:http": bad port`},
		{"127.0.0.1:", "", 0, `address "127.0.0.1:": bad port`},
	}
	for _, c := range cases {
		h, p, err := ParseAddr(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
				t.Errorf("ParseAddr(%q) error = %v, want one starting %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || h != c.host || p != c.port {
			t.Errorf("ParseAddr(%q) = %q, %d, %v; want %q, %d", c.in, h, p, err, c.host, c.port)
		}
	}
}

func TestJoin(t *testing.T) {
	cases := []struct {
		host string
		port uint32
		want string
	}{
		{"10.0.0.1", 80, "10.0.0.1:80"},
		{"::", 15001, "[::]:15001"},
		{"::1", 8080, "[::1]:8080"},
		{"[::1]", 8080, "[::1]:8080"},
		{"reviews", 9080, "reviews:9080"},
		{"", 9, ":9"},
	}
	for _, c := range cases {
		if got := Join(c.host, c.port); got != c.want {
			t.Errorf("Join(%q, %d) = %q, want %q", c.host, c.port, got, c.want)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		_ = StripPort("reviews.default.svc.cluster.local:9080")
		_, _ = Split("[::1]:8080")
	})
	if n != 0 {
		t.Errorf("StripPort and Split allocate %v times, want 0", n)
	}
}

// FuzzSplit checks the splitters against each other and against the
// standard library: whatever the input, Split and StripPort agree with
// PortIndex, host+":"+port gives the input back, ParseAddr agrees with
// Split, Join undoes ParseAddr, and where net.SplitHostPort accepts the
// input the port is the same and the host the same up to brackets.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"reviews:9080", "[::1]:8080", "::1", ":15001", "[::1]", "a:b:c", "[a]b:80", "]:80", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i := PortIndex(s)
		host, port := Split(s)
		if i < 0 {
			if host != s || port != "" || StripPort(s) != s {
				t.Fatalf("%q: no port index but Split = %q, %q", s, host, port)
			}
		} else {
			if s[i] != ':' || host+":"+port != s || StripPort(s) != host {
				t.Fatalf("%q: port index %d, Split = %q, %q, StripPort = %q", s, i, host, port, StripPort(s))
			}
			if strings.IndexByte(port, ':') >= 0 {
				t.Fatalf("%q: port %q holds a ':'", s, port)
			}
		}
		if nh, np, err := net.SplitHostPort(s); err == nil {
			if np != port || (host != nh && host != "["+nh+"]") {
				t.Fatalf("%q: net.SplitHostPort = %q, %q; Split = %q, %q", s, nh, np, host, port)
			}
		}
		ph, pp, err := ParseAddr(s)
		if err != nil {
			return
		}
		if i < 0 || strconv.FormatUint(uint64(pp), 10) != strings.TrimLeft(port, "0") && pp != 0 {
			t.Fatalf("%q: ParseAddr = %q, %d but Split = %q, %q", s, ph, pp, host, port)
		}
		j := Join(ph, pp)
		if jh, jp := Split(j); (jh != ph && jh != "["+ph+"]") || jp != strconv.FormatUint(uint64(pp), 10) {
			t.Fatalf("%q: ParseAddr = %q, %d but Split(Join) = %q, %q", s, ph, pp, jh, jp)
		}
	})
}
