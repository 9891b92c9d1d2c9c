package rbac

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzURITemplate: any template compiles or is rejected without a panic;
// a compiled template never matches a path with characters outside the
// literals it allows, and "/**" matches every valid path.
func FuzzURITemplate(f *testing.F) {
	for _, s := range []string{"/a/*/b", "/**", "/{x}/{y=**}", "/a/**/b", "/*.jpg", "/a/", "/{a=b/*}/c", "/{*}"} {
		f.Add(s, "/a/x/b")
	}
	all, err := compileURITemplate("/**")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tt, err := compileURITemplate(tmpl)
		if err != nil {
			return
		}
		m := tt.match(path)
		if m && strings.ContainsAny(trimQuery(path), " \"<>\\^`{|}") {
			t.Errorf("%q matched %q", tmpl, path)
		}
		if m && !all.match(path) {
			t.Errorf("%q matched %q, which /** does not", tmpl, path)
		}
	})
}

// FuzzXFF: Envoy's last-address rule never panics, and an address it
// returns is the (trimmed) text after the last comma left once the
// trusted hops are skipped.
func FuzzXFF(f *testing.F) {
	f.Add("1.2.3.4, 5.6.7.8", uint8(0))
	f.Add("1.2.3.4,5.6.7.8", uint8(1))
	f.Add(",,", uint8(2))
	f.Fuzz(func(t *testing.T, xff string, hops uint8) {
		a, ok := lastAddressFromXFF([]string{xff}, uint32(hops%4))
		if !ok {
			return
		}
		parts := strings.Split(xff, ",")
		want, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1-int(hops%4)]))
		if err != nil || want != a || a.Zone() != "" {
			t.Errorf("%q hops %d: %v, want %v", xff, hops%4, a, want)
		}
	})
}
