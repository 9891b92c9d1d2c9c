// Package h1parse parses an HTTP/1.1 message head of the common shape
// straight from the bytes a bufio.Reader already holds, into the header map
// net/http's parser would make, with three allocations (the head's bytes
// as one string, the map, one array of values) where textproto makes one
// per line and per value. #12's allocation profile of the sidecar put
// textproto's readMIMEHeader at a quarter of all its allocations.
//
// Only the common shape is parsed: the whole head already buffered, every
// line ending in CRLF, field names that are tokens followed directly by a
// colon, values of visible characters, spaces and tabs, no line folding, no
// Transfer-Encoding, at most one Content-Length (digits only), at most
// maxFields fields. For anything else Parse reports false having consumed
// nothing, and the caller hands the bytes to net/http's parser, which
// decides (and answers errors) exactly as before. So this package never
// judges an unusual message; it only has to agree with net/http on the
// usual ones, which FuzzParseAsNetHTTP checks byte for byte.
package h1parse

import (
	"bytes"
	"net/http"
	"net/textproto"

	"golang.org/x/net/http/httpguts"
)

// maxFields bounds the fields of a head parsed here (more go to net/http).
const maxFields = 64

// Head is a message head of the common shape.
type Head struct {
	// Start is the start line (request or status line), without its CRLF.
	Start string
	// Header is the fields as net/http's parser makes them: canonical
	// names, values trimmed of spaces and tabs, Pragma: no-cache adding
	// Cache-Control (net/http's fixPragmaCacheControl).
	Header http.Header
	// Len is the head's length in bytes, the empty line included.
	Len int
	// ContentLength is the Content-Length field's value; -1 without one.
	ContentLength int64
	// Hosts counts the Host fields; Host is the first one's value.
	Hosts int
	Host  string
	// Close: a Connection field lists "close".
	Close bool
}

// field is one header line's offsets in the head.
type field struct{ start, colon, end int }

// Parse parses the head at the start of buf. It reports false when buf
// does not start with a whole head of the common shape (the package
// comment says which); buf is not modified.
func Parse(buf []byte) (Head, bool) {
	h := Head{ContentLength: -1}
	startEnd, ok := lineEnd(buf, 0)
	if !ok || !visible(buf[:startEnd]) {
		return h, false
	}
	var fields [maxFields]field
	n := 0
	pos := startEnd + 2
	for {
		end, ok := lineEnd(buf, pos)
		if !ok {
			return h, false
		}
		if end == pos {
			h.Len = end + 2
			break
		}
		f, ok := scanField(buf, pos, end)
		if !ok || n == maxFields {
			return h, false
		}
		switch special(buf[pos:f.colon]) {
		case fieldTransferEncoding:
			return h, false
		case fieldContentLength:
			if h.ContentLength >= 0 {
				return h, false // several: net/http compares them
			}
			if h.ContentLength, ok = digits(trim(buf[f.colon+1 : end])); !ok {
				return h, false
			}
		}
		fields[n] = f
		n++
		pos = end + 2
	}
	h.build(string(buf[:h.Len]), startEnd, fields[:n])
	return h, true
}

// build makes h's Start and Header from s, the head's bytes.
func (h *Head) build(s string, startEnd int, fields []field) {
	h.Start = s[:startEnd]
	h.Header = make(http.Header, len(fields))
	values := make([]string, len(fields))
	for _, f := range fields {
		key := textproto.CanonicalMIMEHeaderKey(s[f.start:f.colon])
		value := trimString(s[f.colon+1 : f.end])
		if key == "Host" {
			if h.Hosts == 0 {
				h.Host = value
			}
			h.Hosts++
		}
		if vv := h.Header[key]; vv != nil {
			h.Header[key] = append(vv, value)
			continue
		}
		// One value per name is the rule: a name seen again gets its own
		// array (as textproto's readMIMEHeader).
		vv := values[:1:1]
		values = values[1:]
		vv[0] = value
		h.Header[key] = vv
	}
	h.Close = hasToken(h.Header["Connection"], "close")
	// net/http's fixPragmaCacheControl (RFC 7234 5.4).
	if pv := h.Header["Pragma"]; len(pv) > 0 && pv[0] == "no-cache" {
		if _, ok := h.Header["Cache-Control"]; !ok {
			h.Header["Cache-Control"] = []string{"no-cache"}
		}
	}
}

// lineEnd is the index of the CR of the CRLF ending the line at pos; false
// when the line is not whole in buf, or has a CR or LF of its own.
func lineEnd(buf []byte, pos int) (int, bool) {
	i := bytes.IndexByte(buf[pos:], '\n')
	if i < 1 {
		return 0, false // not whole yet, or a bare LF
	}
	end := pos + i - 1
	if buf[end] != '\r' {
		return 0, false // a bare LF: textproto takes it, net/http decides
	}
	return end, true
}

// scanField checks the field line buf[start:end]: a token, a colon, a
// value of field-value bytes. A line starting with a space or tab (obs-fold,
// or a space before the first field) is not taken.
func scanField(buf []byte, start, end int) (field, bool) {
	f := field{start: start, end: end}
	i := start
	for i < end && tokenByte(buf[i]) {
		i++
	}
	if i == start || i == end || buf[i] != ':' {
		return f, false
	}
	f.colon = i
	for _, c := range buf[i+1 : end] {
		if !valueByte(c) {
			return f, false
		}
	}
	return f, true
}

// visible reports whether a start line is all visible ASCII and spaces
// (anything else is net/http's to judge).
func visible(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// digits parses a Content-Length of 1 to 18 digits (so it fits in an
// int64, as strconv.ParseUint(v, 10, 63) in net/http's
// parseContentLength); anything else is net/http's to judge.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Field names the scan looks out for.
const (
	fieldOther = iota
	fieldTransferEncoding
	fieldContentLength
)

func special(name []byte) int {
	switch {
	case len(name) == len("Transfer-Encoding") && EqualFold(name, "transfer-encoding"):
		return fieldTransferEncoding
	case len(name) == len("Content-Length") && EqualFold(name, "content-length"):
		return fieldContentLength
	}
	return fieldOther
}

// EqualFold compares s with a lower-case ASCII string of the same
// length, folding only ASCII letters (as net/http's internal
// ascii.EqualFold does for tokens).
func EqualFold[S string | []byte](s S, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// trim and trimString drop leading and trailing spaces and tabs, as
// textproto trims a value.
func trim(b []byte) []byte {
	return bytes.TrimFunc(b, isSpace)
}

func trimString(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' }

// tokenByte: a field name's byte (RFC 9110 tchar, textproto's
// validHeaderFieldByte).
func tokenByte(c byte) bool { return c < 0x80 && httpguts.IsTokenRune(rune(c)) }

// valueByte: a field value's byte (textproto's validHeaderValueByte:
// visible, space, tab, obs-text).
func valueByte(c byte) bool { return c >= ' ' && c != 0x7f || c == '\t' }

func hasToken(vv []string, token string) bool {
	return len(vv) > 0 && httpguts.HeaderValuesContainsToken(vv, token)
}
