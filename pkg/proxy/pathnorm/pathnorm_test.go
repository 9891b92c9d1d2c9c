package pathnorm

import (
	"strings"
	"testing"
)

// Cases from Envoy's test/common/http/path_utility_test.cc.
func TestCanonicalEnvoyCases(t *testing.T) {
	valid := []struct{ in, want string }{
		{"/xyz", "/xyz"},
		{"/x/y/z", "/x/y/z"},
		{"/a/b/../c", "/a/c"},
		{"/a/b/./c", "/a/b/c"},
		{"a/b/../c", "/a/c"},
		{"/a/b/../../../../c", "/c"},
		{"/a/..\\c", "/c"},
		{"/%c0%af", "/%c0%af"},
		{"/%5c%25", "/%5c%25"},
		{"/a/b/%2E%2E/c", "/a/c"},
		{"/a/b/%2E./c", "/a/c"},
		{"/a/b/%2E/c", "/a/b/c"},
		{"..", "/"},
		{"/../a/b", "/a/b"},
		{"/./a/b", "/a/b"},
		{"/A/B/C", "/A/B/C"},
		{"/a/b/%2e%2e/c", "/a/c"},
		{"/a/%2F%2f/c", "/a/%2F%2f/c"},
		// More: the case, trailing dot segments, unreserved escapes.
		{"/public/../admin", "/admin"},
		{"/a/b/..", "/a/"},
		{"/a/.", "/a/"},
		{"/%61dmin", "/admin"},
		{"/a b", "/a%20b"},
		{"/.well-known/x", "/.well-known/x"},
		{"/a/..b/c", "/a/..b/c"},
	}
	for _, c := range valid {
		got, ok := Canonical(c.in)
		if !ok || got != c.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q, true", c.in, got, ok, c.want)
		}
	}
	for _, in := range []string{"/xyz/.%00../abc", "/xyz/%00.%00./abc", "/xyz/AAAAA%%0000/abc"} {
		if got, ok := Canonical(in); ok {
			t.Errorf("Canonical(%q) = %q, true; want rejected", in, got)
		}
	}
}

func TestMergeSlashesEnvoyCases(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""}, {"a//b/c", "a/b/c"}, {"/a//b/c/", "/a/b/c/"}, {"a//b/c/", "a/b/c/"}, {"/a", "/a"},
		{"//a/b/c", "/a/b/c"}, {"/a//b/c", "/a/b/c"}, {"/a/b/c//", "/a/b/c/"}, {"/a///b/c", "/a/b/c"}, {"/a////b/c", "/a/b/c"},
	} {
		if got := MergeSlashes(c.in); got != c.want {
			t.Errorf("MergeSlashes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Istio's meshConfig.pathNormalization levels, as xdsgen maps them to the
// connection manager (see xdsgen's pathNormalization).
func TestApplyLevels(t *testing.T) {
	none := Options{}
	base := Options{Normalize: true}
	merge := Options{Normalize: true, MergeSlashes: true}
	decode := Options{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}
	cases := []struct {
		name string
		o    Options
		in   string
		want string
		res  Result
	}{
		{"none keeps dots", none, "/public/../admin", "/public/../admin", Continue},
		{"base removes dots", base, "/public/../admin", "/admin", Continue},
		{"base keeps double slash", base, "/a//b", "/a//b", Continue},
		{"merge", merge, "/a//b/../c", "/a/c", Continue},
		{"merge keeps %2F", merge, "/a%2Fb", "/a%2Fb", Continue},
		{"decode %2F", decode, "/a%2F..%2Fadmin", "/admin", Continue},
		{"decode %5c", decode, "/a%5c%5cb", "/a/b", Continue},
		{"reject %2f", Options{Normalize: true, EscapedSlashes: RejectRequest}, "/a%2fb", "", Reject},
		{"redirect %2F", Options{Normalize: true, EscapedSlashes: UnescapeAndRedirect}, "/a%2Fb", "/a/b", Redirect},
		{"redirect nothing to do", Options{Normalize: true, EscapedSlashes: UnescapeAndRedirect}, "/a/b", "/a/b", Continue},
		{"fragment", none, "/a#b", "", Reject},
		{"escaped NUL", base, "/a%00", "", Reject},
	}
	for _, c := range cases {
		got, res := c.o.Apply(c.in)
		if res != c.res || (res != Reject && got != c.want) {
			t.Errorf("%s: Apply(%q) = %q, %d; want %q, %d", c.name, c.in, got, res, c.want, c.res)
		}
	}
}

func TestApplyNormalPathAllocatesNothing(t *testing.T) {
	o := Options{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}
	p := strings.Repeat("/segment", 8) + "/file.txt"
	if n := testing.AllocsPerRun(100, func() { o.Apply(p) }); n != 0 {
		t.Fatalf("Apply on a normal path allocates %v times", n)
	}
}

// FuzzApply checks the invariants of a normalized path: it starts with '/',
// has no dot segment, no '\', no "//" when merging, and normalizing it
// again changes nothing.
func FuzzApply(f *testing.F) {
	for _, s := range []string{"/public/../admin", "/a/b/%2E%2E/c", "a/..\\c", "/a%2F..%2Fb", "//a//b/", "/%00", "/a#b", "/%c0%af"} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, mode uint8) {
		o := Options{Normalize: true, MergeSlashes: mode&1 != 0, EscapedSlashes: EscapedSlashes(mode>>1) % 4}
		out, res := o.Apply(in)
		if res == Reject {
			return
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "\\") {
			t.Fatalf("Apply(%q) = %q: not a rooted path with '/' separators", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("Apply(%q) = %q: dot segment left", in, out)
			}
		}
		if o.MergeSlashes && strings.Contains(out, "//") {
			t.Fatalf("Apply(%q) = %q: slashes not merged", in, out)
		}
		if hasInvalidEscape(in) {
			// Like Chromium's canonicalizer (and so Envoy), a '%' that
			// starts no escape passes through, so "%%370" becomes "/%70":
			// one pass, not a fixed point.
			return
		}
		again, res2 := Options{Normalize: true, MergeSlashes: o.MergeSlashes}.Apply(out)
		if res2 != Continue || again != out {
			t.Fatalf("Apply(%q) = %q, but normalizing that again gives %q (%d)", in, out, again, res2)
		}
	})
}

// Istio's integration cases (tests/integration/pilot: path normalization
// per meshConfig.pathNormalization level); the fragment cases are left out
// because clients do not send fragments.
func TestApplyIstioCases(t *testing.T) {
	type expect struct{ in, out string }
	common := []expect{
		{"/", "/"}, {"/app/", "/app/"}, {"/app/../admin", "/admin"}, {"/app", "/app"}, {"/xyz%30..//abc", "/xyz0../abc"},
		{"/app/%2E./admin", "/admin"}, {`/app\admin`, `/app/admin`}, {`/app/\/\/\admin`, `/app/admin`},
		{`/app//../admin`, `/app/admin`}, {`/app//../../admin`, `/admin`},
	}
	levels := []struct {
		name  string
		o     Options
		cases []expect
	}{
		{"MERGE_SLASHES", Options{Normalize: true, MergeSlashes: true}, append([]expect{
			{"/app//", "/app/"}, {"/app/%2f", "/app/%2f"}, {"/app%2f/", "/app%2f/"},
			{`/%2Fapp%5cadmin%5Cabc`, `/%2Fapp%5cadmin%5Cabc`},
			{`/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`},
		}, common...)},
		{"DECODE_AND_MERGE_SLASHES", Options{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}, append([]expect{
			{"/app//", "/app/"}, {"/app/%2f", "/app/"}, {"/app%2f/", "/app/"},
			{`/%2Fapp%5cadmin%5Cabc`, `/app/admin/abc`}, {`/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, `/app/admin/abc`},
			{`/%c0%2e%c0%2e/admin`, `/%c0.%c0./admin`}, {`/%c0%2fadmin`, `/%c0/admin`},
		}, common...)},
	}
	for _, l := range levels {
		for _, c := range l.cases {
			if got, res := l.o.Apply(c.in); res != Continue || got != c.out {
				t.Errorf("%s: Apply(%q) = %q, %d; want %q", l.name, c.in, got, res, c.out)
			}
		}
	}
}

func hasInvalidEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return true
		}
	}
	return false
}
