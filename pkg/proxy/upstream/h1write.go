package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Writing an HTTP/1.1 request as net/http's Request.write and
// transferWriter do for a Transport (request.go, transfer.go), straight
// into the connection's buffer: no header copy, no sorting of the names,
// no fmt. What differs from net/http is said where it does.

// h1SkipHeaders are written from the request's fields, not its Header map
// (net/http's reqWriteExcludeHeader).
func h1SkipHeader(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// writeRequestHead writes req's request line and headers: Host from
// req.Host (else the URL's), User-Agent only when the request has one
// (Envoy adds none; net/http would add "Go-http-client/1.1"), the body's
// framing (Content-Length, or chunked for a body of unknown length, with
// its announced trailers), and Connection: close when the request or the
// connection asks for it. Invalid header names and values are refused as
// net/http's Transport refuses them.
func writeRequestHead(w *bufio.Writer, req *http.Request, closeAfter bool) error {
	host, err := requestHost(req)
	if err != nil {
		return err
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	} else if !validMethod(method) {
		return fmt.Errorf("upstream: invalid method %q", method)
	}
	// Every name and value is checked before anything is written, so a
	// refused request leaves nothing in the buffer.
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("upstream: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("upstream: invalid header field value for %q", k)
			}
		}
	}

	w.WriteString(method)
	w.WriteByte(' ')
	if err := writeRequestURI(w, req); err != nil {
		return err
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua := req.Header["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		writeHeaderLine(w, "User-Agent", ua[0])
	}
	chunked, err := writeFraming(w, req)
	if err != nil {
		return err
	}
	if (req.Close || closeAfter) && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") {
		w.WriteString("Connection: close\r\n")
	}
	// In the map's order: net/http sorts the names (for reproducible
	// output), Envoy keeps the client's order, and no order means anything
	// to HTTP; h1server writes responses in the map's order too.
	for k, vv := range req.Header {
		if h1SkipHeader(k) {
			continue
		}
		for _, v := range vv {
			writeHeaderLine(w, k, v)
		}
	}
	if chunked && len(req.Trailer) > 0 {
		names := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			k = http.CanonicalHeaderKey(k)
			if !httpguts.ValidHeaderFieldName(k) || h1SkipHeader(k) {
				return fmt.Errorf("upstream: invalid trailer name %q", k)
			}
			names = append(names, k)
		}
		slices.Sort(names)
		writeHeaderLine(w, "Trailer", strings.Join(names, ","))
	}
	_, err = w.WriteString("\r\n")
	return err
}

// writeFraming writes the body's Content-Length or Transfer-Encoding as
// net/http's transferWriter does (shouldSendContentLength): a known
// length; 0 for POST, PUT and PATCH without a body (many servers want
// it); chunked for a body of unknown length.
func writeFraming(w *bufio.Writer, req *http.Request) (chunked bool, err error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && (req.ContentLength < 0 || len(req.TransferEncoding) > 0):
		// Chunked wins over a length, as in net/http.
		if len(req.TransferEncoding) > 0 && !slices.Equal(req.TransferEncoding, []string{"chunked"}) {
			return false, fmt.Errorf("upstream: unsupported transfer encoding %q", req.TransferEncoding)
		}
		w.WriteString("Transfer-Encoding: chunked\r\n")
		return true, nil
	case hasBody && req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		var b [20]byte
		w.Write(strconv.AppendInt(b[:0], req.ContentLength, 10))
		w.WriteString("\r\n")
	case hasBody:
		// Length 0 with a body: net/http probes it; the router never
		// sends one (outboundRequest drops an empty body).
		return false, errors.New("upstream: request body with ContentLength 0")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	return false, nil
}

// writeRequestBody writes req's body (exactly ContentLength bytes, or
// chunked with its trailers) and closes it, as net/http does.
func writeRequestBody(w *bufio.Writer, req *http.Request) (err error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	defer func() {
		if cerr := req.Body.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	if req.ContentLength > 0 && len(req.TransferEncoding) == 0 {
		n, err := copyN(w, req.Body, req.ContentLength)
		if err == io.EOF {
			return fmt.Errorf("upstream: request body ended after %d of its %d bytes", n, req.ContentLength)
		}
		return err
	}
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(cw, req.Body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil { // the last, empty chunk
		return err
	}
	for k, vv := range req.Trailer {
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("upstream: invalid trailer value for %q", k)
			}
			writeHeaderLine(w, http.CanonicalHeaderKey(k), v)
		}
	}
	_, err = w.WriteString("\r\n")
	return err
}

// copyN copies n bytes from r to w as io.CopyN does (io.EOF when r ends
// first), reading straight into w's free buffer, without io.CopyN's
// LimitReader allocation.
func copyN(w *bufio.Writer, r io.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		if w.Available() == 0 {
			if err := w.Flush(); err != nil {
				return done, err
			}
		}
		buf := w.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), n-done)]
		m, err := r.Read(buf)
		if m > 0 {
			w.Write(buf[:m])
			done += int64(m)
		}
		if err != nil {
			if done == n && err == io.EOF {
				return done, nil
			}
			return done, err
		}
	}
	return done, nil
}

// writeHeaderLine writes one header; the value was checked (no CR or LF)
// and is trimmed of surrounding white space as net/http trims it.
func writeHeaderLine(w *bufio.Writer, k, v string) {
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(textproto.TrimString(v))
	w.WriteString("\r\n")
}

// writeRequestURI writes the origin form of the request target (net/http's
// URL.RequestURI) without building the string: a path from "/", or "*"
// (RFC 9112, section 3.2); anything else would not parse at the server.
func writeRequestURI(w *bufio.Writer, req *http.Request) error {
	u := req.URL
	if u.Opaque != "" {
		t := u.RequestURI()
		if !strings.HasPrefix(t, "/") && t != "*" || !lineSafe(t) {
			return fmt.Errorf("upstream: invalid request target %q", t)
		}
		w.WriteString(t)
		return nil
	}
	p := u.EscapedPath()
	switch {
	case p == "":
		p = "/"
	case p[0] != '/' && p != "*":
		return fmt.Errorf("upstream: invalid request target %q", p)
	}
	if !lineSafe(u.RawQuery) {
		// url keeps a query as it came (a space from an HTTP/2 :path,
		// say); on the request line it would split the target.
		return fmt.Errorf("upstream: invalid request target query %q", u.RawQuery)
	}
	w.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		w.WriteByte('?')
		w.WriteString(u.RawQuery)
	}
	return nil
}

// lineSafe reports whether s has no space or control character, which
// would break the request line.
func lineSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// requestHost is the Host header's value: req.Host, else the URL's host,
// in ASCII (punycode) and checked as net/http checks it.
func requestHost(req *http.Request) (string, error) {
	host := req.Host
	if host == "" {
		if req.URL == nil {
			return "", errors.New("upstream: request without a host")
		}
		host = req.URL.Host
	}
	if !isASCII(host) {
		h, err := httpguts.PunycodeHostPort(host)
		if err != nil {
			return "", fmt.Errorf("upstream: host %q: %w", host, err)
		}
		host = h
	}
	if !httpguts.ValidHostHeader(host) {
		return "", fmt.Errorf("upstream: invalid Host header %q", host)
	}
	return host, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validMethod: a method is a token (RFC 9110, section 9.1).
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}
