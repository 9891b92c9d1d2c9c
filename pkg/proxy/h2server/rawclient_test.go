package h2server_test

// rawConn is an HTTP/2 client that writes whatever frames a test asks for
// (valid or not) and reads the server's frames into per-stream state, so a
// test can see exactly how a server answers: HEADERS (+DATA, trailers),
// RST_STREAM, GOAWAY, or a closed connection.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

type rawConn struct {
	t       testing.TB
	c       net.Conn
	fr      *http2.Framer
	timeout time.Duration // guard for each wait
	maxFrag int           // the largest header block fragment written

	wmu  sync.Mutex // guards the write side: fr's writes, enc, hbuf
	enc  *hpack.Encoder
	hbuf bytes.Buffer

	// Read side: only the goroutine reading frames touches these.
	serverSettings map[http2.SettingID]uint32
	sawSettings    bool // the server's (non-ACK) SETTINGS
	settingsAcks   int  // ACKs of ours
	connRecvd      int64
	connSent       int64  // DATA bytes written, for the send windows
	maxFrameSize   uint32 // what we advertised (SETTINGS_MAX_FRAME_SIZE)
	connWindowUpd  int64  // the server's connection WINDOW_UPDATEs
	streams        map[uint32]*rawStream
	goAway         *goAwayInfo
	goAways        []goAwayInfo
	closed         bool  // reading ended (EOF, reset, or a framing error)
	readErr        error // what ended reading
	pingAcks       [][8]byte
	// autoWindow returns every DATA frame's length to the server's send
	// windows (connection and stream) as soon as it is read.
	autoWindow bool
	// onData, if set, is called for every DATA frame read.
	onData func(st *rawStream, n int)
	frames []string // what was read, for failure messages
}

type goAwayInfo struct {
	Code         http2.ErrCode
	LastStreamID uint32
	Debug        string
}

type rawStream struct {
	id            uint32
	informational []string // 1xx statuses
	status        string
	header        http.Header
	body          bytes.Buffer
	trailer       http.Header
	ended         bool // END_STREAM read
	rst           *http2.ErrCode
	recvd         int64 // flow-controlled DATA bytes
	windowUpd     int64 // the server's WINDOW_UPDATEs for the stream
	headersAt     int   // len(frames) when the response HEADERS arrived
}

// dialRaw connects to addr and writes the client preface and a SETTINGS
// frame with settings; it reads nothing.
func dialRaw(t testing.TB, addr string, settings ...http2.Setting) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := newRawConn(t, c)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	rc.writeSettings(settings...)
	return rc
}

func newRawConn(t testing.TB, c net.Conn) *rawConn {
	rc := &rawConn{
		t:              t,
		c:              c,
		timeout:        5 * time.Second,
		maxFrag:        16384,
		serverSettings: map[http2.SettingID]uint32{},
		streams:        map[uint32]*rawStream{},
		autoWindow:     true,
		maxFrameSize:   16384,
	}
	rc.fr = http2.NewFramer(c, c)
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.fr.MaxHeaderListSize = 1 << 20
	rc.fr.SetMaxReadFrameSize(rc.maxFrameSize)
	rc.fr.AllowIllegalWrites = true
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	return rc
}

// handshake reads until the server's SETTINGS has arrived (and is ACKed)
// and ours is ACKed.
func (rc *rawConn) handshake() {
	rc.t.Helper()
	for !rc.sawSettings || rc.settingsAcks == 0 {
		if !rc.readFrame() {
			rc.t.Fatalf("handshake: %v; frames: %v", rc.readErr, rc.frames)
		}
	}
}

// dialHandshake is dialRaw and handshake.
func dialHandshake(t testing.TB, addr string, settings ...http2.Setting) *rawConn {
	t.Helper()
	rc := dialRaw(t, addr, settings...)
	rc.handshake()
	return rc
}

func (rc *rawConn) stream(id uint32) *rawStream {
	st := rc.streams[id]
	if st == nil {
		st = &rawStream{id: id}
		rc.streams[id] = st
	}
	return st
}

// write runs f on the framer under the write lock, with a deadline; a
// write error is returned (the server may well have closed).
func (rc *rawConn) write(f func(fr *http2.Framer) error) error {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	rc.c.SetWriteDeadline(time.Now().Add(rc.timeout))
	return f(rc.fr)
}

// writeSettings writes a SETTINGS frame; a larger SETTINGS_MAX_FRAME_SIZE
// in it is allowed at once (a smaller one never: reading checks the
// server's frames against it).
func (rc *rawConn) writeSettings(s ...http2.Setting) error {
	for _, st := range s {
		if st.ID == http2.SettingMaxFrameSize && st.Val > rc.maxFrameSize {
			rc.maxFrameSize = st.Val
			rc.fr.SetMaxReadFrameSize(st.Val)
		}
	}
	return rc.write(func(fr *http2.Framer) error { return fr.WriteSettings(s...) })
}

// hf makes header fields of name, value pairs.
func hf(pairs ...string) []hpack.HeaderField {
	var fs []hpack.HeaderField
	for i := 0; i+1 < len(pairs); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: pairs[i], Value: pairs[i+1]})
	}
	return fs
}

// get is a valid GET's header fields for path.
func get(path string, extra ...string) []hpack.HeaderField {
	return hf(append([]string{":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", path}, extra...)...)
}

// post is a valid POST's header fields for path.
func post(path string, extra ...string) []hpack.HeaderField {
	return hf(append([]string{":method", "POST", ":scheme", "http", ":authority", "example.com", ":path", path}, extra...)...)
}

// writeHeaders encodes fields into one header block, sent as HEADERS and
// as many CONTINUATION frames as needed.
func (rc *rawConn) writeHeaders(id uint32, endStream bool, fields []hpack.HeaderField) error {
	return rc.write(func(fr *http2.Framer) error {
		rc.hbuf.Reset()
		for _, f := range fields {
			rc.enc.WriteField(f)
		}
		block := rc.hbuf.Bytes()
		max := rc.maxFrag
		first := block
		if len(first) > max {
			first = block[:max]
		}
		block = block[len(first):]
		err := fr.WriteHeaders(http2.HeadersFrameParam{
			StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0,
		})
		for err == nil && len(block) > 0 {
			n := min(len(block), max)
			err = fr.WriteContinuation(id, n == len(block), block[:n])
			block = block[n:]
		}
		return err
	})
}

func (rc *rawConn) writeData(id uint32, endStream bool, data []byte) error {
	return rc.write(func(fr *http2.Framer) error {
		rc.connSent += int64(len(data))
		return fr.WriteData(id, endStream, data)
	})
}

func (rc *rawConn) writeRST(id uint32, code http2.ErrCode) error {
	return rc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

func (rc *rawConn) writeWindowUpdate(id, n uint32) error {
	return rc.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, n) })
}

// readFrame reads one frame into the state; false when reading has ended
// (closed, or the guard timeout passed).
func (rc *rawConn) readFrame() bool {
	if rc.closed {
		return false
	}
	rc.c.SetReadDeadline(time.Now().Add(rc.timeout))
	f, err := rc.fr.ReadFrame()
	if err == http2.ErrFrameTooLarge {
		rc.t.Errorf("the server sent a frame larger than SETTINGS_MAX_FRAME_SIZE %d; frames:\n  %s", rc.maxFrameSize, rc.dump())
	}
	if err != nil {
		rc.closed = true
		rc.readErr = err
		return false
	}
	rc.frames = append(rc.frames, summarize(f))
	rc.checkStreamState(f)
	switch f := f.(type) {
	case *http2.SettingsFrame:
		rc.onSettings(f)
	case *http2.PingFrame:
		if f.IsAck() {
			rc.pingAcks = append(rc.pingAcks, f.Data)
		} else {
			rc.write(func(fr *http2.Framer) error { return fr.WritePing(true, f.Data) })
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			rc.connWindowUpd += int64(f.Increment)
		} else {
			rc.stream(f.StreamID).windowUpd += int64(f.Increment)
		}
	case *http2.MetaHeadersFrame:
		rc.onHeaders(f)
	case *http2.DataFrame:
		rc.onDataFrame(f)
	case *http2.RSTStreamFrame:
		code := f.ErrCode
		rc.stream(f.StreamID).rst = &code
	case *http2.GoAwayFrame:
		g := goAwayInfo{f.ErrCode, f.LastStreamID, string(f.DebugData())}
		rc.goAway = &g
		rc.goAways = append(rc.goAways, g)
	}
	return true
}

// checkStreamState fails the test for a response frame the stream's
// state does not allow (RFC 9113 5.1, 8.1): DATA before the response
// HEADERS, a second response, trailers without END_STREAM, or HEADERS or
// DATA after END_STREAM.
func (rc *rawConn) checkStreamState(f http2.Frame) {
	id := f.Header().StreamID
	st := rc.streams[id]
	var bad string
	switch f := f.(type) {
	case *http2.DataFrame:
		switch {
		case st != nil && st.ended:
			bad = "DATA after END_STREAM"
		case st == nil || st.status == "":
			bad = "DATA before the response HEADERS"
		}
	case *http2.MetaHeadersFrame:
		status := f.PseudoValue("status")
		switch {
		case st != nil && st.ended:
			bad = "HEADERS after END_STREAM"
		case st != nil && st.status != "" && status != "":
			bad = "a second response HEADERS"
		case st != nil && st.status != "" && !f.StreamEnded():
			bad = "trailers without END_STREAM"
		}
	}
	if bad != "" {
		rc.t.Errorf("stream %d: the server sent %s; frames:\n  %s", id, bad, rc.dump())
	}
}

func (rc *rawConn) onSettings(f *http2.SettingsFrame) {
	if f.IsAck() {
		rc.settingsAcks++
		return
	}
	f.ForeachSetting(func(s http2.Setting) error {
		rc.serverSettings[s.ID] = s.Val
		return nil
	})
	rc.sawSettings = true
	rc.write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
}

func (rc *rawConn) onHeaders(f *http2.MetaHeadersFrame) {
	st := rc.stream(f.StreamID)
	h := http.Header{}
	for _, r := range f.RegularFields() {
		h.Add(r.Name, r.Value)
	}
	status := f.PseudoValue("status")
	switch {
	case status != "" && status[0] == '1':
		st.informational = append(st.informational, status)
	case status != "":
		st.status, st.header = status, h
		st.headersAt = len(rc.frames)
	default:
		st.trailer = h
	}
	if f.StreamEnded() {
		st.ended = true
	}
}

func (rc *rawConn) onDataFrame(f *http2.DataFrame) {
	st := rc.stream(f.StreamID)
	n := int(f.Header().Length)
	st.body.Write(f.Data())
	st.recvd += int64(n)
	rc.connRecvd += int64(n)
	if f.StreamEnded() {
		st.ended = true
	}
	if rc.onData != nil {
		rc.onData(st, n)
	}
	if rc.autoWindow && n > 0 {
		rc.writeWindowUpdate(0, uint32(n))
		if !st.ended {
			rc.writeWindowUpdate(f.StreamID, uint32(n))
		}
	}
}

// summarize is a frame in a few words.
func summarize(f http2.Frame) string {
	h := f.Header()
	s := fmt.Sprintf("%v[%d]", h.Type, h.StreamID)
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return s + " ACK"
		}
		var vals []string
		f.ForeachSetting(func(st http2.Setting) error {
			vals = append(vals, st.String())
			return nil
		})
		return s + " " + strings.Join(vals, ",")
	case *http2.MetaHeadersFrame:
		var kv []string
		for _, x := range f.Fields {
			kv = append(kv, x.Name+"="+x.Value)
		}
		return fmt.Sprintf("%s end=%v %s", s, f.StreamEnded(), strings.Join(kv, " "))
	case *http2.DataFrame:
		return fmt.Sprintf("%s len=%d end=%v", s, h.Length, f.StreamEnded())
	case *http2.RSTStreamFrame:
		return s + " " + f.ErrCode.String()
	case *http2.GoAwayFrame:
		return fmt.Sprintf("%s %v last=%d %q", s, f.ErrCode, f.LastStreamID, f.DebugData())
	case *http2.WindowUpdateFrame:
		return fmt.Sprintf("%s +%d", s, f.Increment)
	}
	return s
}

// outcome is how a stream ended, in a word or two: "status 200" (the body
// is in the stream; a complete response, whatever came after it), "RST
// <code>", "GOAWAY <code>" (an error, or the stream refused), "closed", or
// "" while nothing has ended it.
func (rc *rawConn) outcome(id uint32) string {
	st := rc.streams[id]
	switch {
	case st != nil && st.ended && st.status != "":
		return "status " + st.status // whatever came after the response
	case st != nil && st.rst != nil:
		return "RST " + st.rst.String()
	case rc.goAway != nil && (rc.goAway.Code != http2.ErrCodeNo || id > rc.goAway.LastStreamID):
		return "GOAWAY " + rc.goAway.Code.String()
	case rc.closed && rc.goAway != nil:
		return "GOAWAY " + rc.goAway.Code.String()
	case rc.closed && isTimeout(rc.readErr):
		return "timeout"
	case rc.closed:
		return "closed"
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// wait reads frames until stream id has an outcome, and returns it.
func (rc *rawConn) wait(id uint32) string {
	for {
		if o := rc.outcome(id); o != "" {
			return o
		}
		rc.readFrame()
	}
}

// waitFor reads frames until cond holds; false if reading ended first.
func (rc *rawConn) waitFor(cond func() bool) bool {
	for !cond() {
		if !rc.readFrame() {
			return false
		}
	}
	return true
}

// ping sends a PING and reads until its ACK: everything the server sent
// before answering it has then been read.
func (rc *rawConn) ping(data [8]byte) bool {
	if err := rc.write(func(fr *http2.Framer) error { return fr.WritePing(false, data) }); err != nil {
		return false
	}
	n := len(rc.pingAcks)
	return rc.waitFor(func() bool {
		for _, a := range rc.pingAcks[n:] {
			if a == data {
				return true
			}
		}
		return false
	})
}

// waitClosed reads (and drops) frames until the connection ends; false
// if the guard timeout passed first.
func (rc *rawConn) waitClosed() bool {
	for rc.readFrame() {
	}
	return !isTimeout(rc.readErr)
}

// body is stream id's response body so far.
func (rc *rawConn) body(id uint32) string {
	if st := rc.streams[id]; st != nil {
		return st.body.String()
	}
	return ""
}

// dump is the read frames, for failure messages.
func (rc *rawConn) dump() string {
	return strings.Join(rc.frames, "\n  ")
}

// sendWindows is what the server lets the client send on stream id,
// given sent bytes on it so far, and on the connection.
func (rc *rawConn) sendWindows(id uint32, sent int64) (stream, conn int64) {
	initial := int64(65535)
	if v, ok := rc.serverSettings[http2.SettingInitialWindowSize]; ok {
		initial = int64(v)
	}
	return initial + rc.stream(id).windowUpd - sent, 65535 + rc.connWindowUpd - rc.connSent
}

// upload sends data as the whole body of stream id (with END_STREAM if
// end) within the server's send windows, reading frames while they are
// shut: false if reading ended first.
func (rc *rawConn) upload(id uint32, data []byte, end bool) bool {
	sent := 0
	for sent < len(data) {
		stream, conn := rc.sendWindows(id, int64(sent))
		n := int(min(stream, conn, 16384, int64(len(data)-sent)))
		if n <= 0 {
			if !rc.readFrame() {
				return false
			}
			continue
		}
		if rc.writeData(id, end && sent+n == len(data), data[sent:sent+n]) != nil {
			return false
		}
		sent += n
	}
	if len(data) == 0 && end {
		return rc.writeData(id, true, nil) == nil
	}
	return true
}
