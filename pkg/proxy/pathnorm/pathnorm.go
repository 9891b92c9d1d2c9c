// Package pathnorm normalizes request paths the way Envoy's HTTP connection
// manager does before routing (ConnectionManagerUtility::maybeNormalizePath
// in envoy source/common/http/conn_manager_utility.cc, with PathUtil in
// source/common/http/path_utility.cc):
//
//  1. a path with a fragment ('#') is rejected
//     (envoy.reloadable_features.http_reject_path_with_fragment);
//  2. path_with_escaped_slashes_action: %2F and %5C (any case) are kept,
//     or rejected (400), or unescaped and the client redirected (307), or
//     unescaped and forwarded;
//  3. normalize_path: RFC 3986 section 5.2.4 dot segments removed (also
//     "%2e" forms), '\' read as '/', escaped unreserved characters
//     decoded, characters not allowed in a path escaped, a missing leading
//     '/' added; a path climbing above the root stops at the root; an
//     escaped NUL is rejected;
//  4. merge_slashes: runs of '/' become one.
//
// Istio sets these from meshConfig.pathNormalization (see xdsgen).
package pathnorm

import "strings"

// EscapedSlashes is the HCM's path_with_escaped_slashes_action.
type EscapedSlashes uint8

const (
	// KeepUnchanged leaves %2F and %5C alone (Envoy's default).
	KeepUnchanged EscapedSlashes = iota
	// RejectRequest answers 400 to a path with an escaped slash.
	RejectRequest
	// UnescapeAndRedirect answers 307 to the unescaped path.
	UnescapeAndRedirect
	// UnescapeAndForward unescapes and goes on.
	UnescapeAndForward
)

// Options are one connection manager's path settings.
type Options struct {
	Normalize      bool // normalize_path
	MergeSlashes   bool // merge_slashes
	EscapedSlashes EscapedSlashes
}

// Result says what the request path does with the request.
type Result uint8

const (
	// Continue routes the (possibly changed) path.
	Continue Result = iota
	// Reject answers 400 (Envoy's path_normalization_failed).
	Reject
	// Redirect answers 307 with the new path in Location.
	Redirect
)

// Apply normalizes path (the request target's path, without the query).
// It returns path itself, allocating nothing, when nothing changes.
func (o Options) Apply(path string) (string, Result) {
	if strings.IndexByte(path, '#') >= 0 {
		return path, Reject
	}
	res := Continue
	if o.EscapedSlashes != KeepUnchanged && hasEscapedSlash(path) {
		switch o.EscapedSlashes {
		case RejectRequest:
			return path, Reject
		case UnescapeAndRedirect:
			res = Redirect
		}
		path = unescapeSlashes(path)
	}
	if o.Normalize {
		var ok bool
		if path, ok = Canonical(path); !ok {
			return path, Reject
		}
	}
	if o.MergeSlashes {
		path = MergeSlashes(path)
	}
	return path, res
}

// hasEscapedSlash reports whether p holds %2F or %5C in any case.
func hasEscapedSlash(p string) bool {
	for i := strings.IndexByte(p, '%'); i >= 0 && i+2 < len(p); {
		if isEscapedSlash(p[i+1], p[i+2]) {
			return true
		}
		j := strings.IndexByte(p[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func isEscapedSlash(a, b byte) bool {
	return (a == '2' && (b == 'f' || b == 'F')) || (a == '5' && (b == 'c' || b == 'C'))
}

// unescapeSlashes is Envoy's PathUtil::unescapeSlashes: %2F becomes '/'
// and %5C becomes '\' (which normalize_path then reads as '/').
func unescapeSlashes(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isEscapedSlash(p[i+1], p[i+2]) {
			if p[i+1] == '2' {
				b.WriteByte('/')
			} else {
				b.WriteByte('\\')
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// MergeSlashes collapses runs of '/' into one (Envoy's merge_slashes).
func MergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// Canonical is Envoy's PathUtil::canonicalPath (Chromium's URL path
// canonicalizer): see the package comment. ok is false for a path Envoy
// rejects.
func Canonical(p string) (string, bool) {
	if isCanonical(p) {
		return p, true
	}
	var b strings.Builder
	b.Grow(len(p) + 1)
	if len(p) == 0 || (p[0] != '/' && p[0] != '\\') {
		b.WriteByte('/')
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			b.WriteByte('/')
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if v == 0 {
				return p, false
			}
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteString(p[i : i+3])
			}
			i += 2
		case c == 0:
			return p, false
		case needsEscape(c):
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return removeDotSegments(b.String()), true
}

// isCanonical is the allocation-free check for the usual path: it starts
// with '/', has no '\', no escapes, nothing to escape and no dot segment.
func isCanonical(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' || c == '%' || c == 0 || needsEscape(c) {
			return false
		}
		if c == '.' && p[i-1] == '/' {
			// "/." or "/.." followed by '/' or the end is a dot segment.
			j := i + 1
			if j < len(p) && p[j] == '.' {
				j++
			}
			if j == len(p) || p[j] == '/' {
				return false
			}
		}
	}
	return true
}

// removeDotSegments is RFC 3986 section 5.2.4 on a path starting with '/';
// ".." at the root stays at the root, as in Envoy.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := segs[:0]
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isUnreserved is RFC 3986's unreserved set, which the canonicalizer
// decodes when escaped.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// needsEscape: bytes a canonical path carries escaped (controls, space,
// '"', '<', '>', '`', '{', '}', DEL and non-ASCII), as Chromium's path
// canonicalizer escapes them.
func needsEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '`' || c == '{' || c == '}'
}
