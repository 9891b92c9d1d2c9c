package testenv

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// A hand-made RFC 6455 websocket client and echo server for tests of
// upgrades through proxies: the handshake (section 4) and unfragmented
// text frames (section 5), masked from the client as the RFC requires.

const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// websocketAccept is Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func websocketAccept(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// WebsocketEcho answers a websocket handshake and then echoes every text
// frame back as prefix + path + ": " + text, where path is the request's
// path as the server received it. A request that is not a websocket
// handshake gets 400, as a websocket-only app answers.
func WebsocketEcho(prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
			http.Error(w, "not a websocket handshake", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", websocketAccept(key))
		if brw.Flush() != nil {
			return
		}
		for {
			op, payload, err := readFrame(brw.Reader)
			if err != nil || op == 8 { // close
				return
			}
			if writeFrame(conn, 1, []byte(prefix+r.URL.RequestURI()+": "+string(payload)), false) != nil {
				return
			}
		}
	})
}

// WebsocketConn is the client end of a websocket.
type WebsocketConn struct {
	conn net.Conn
	br   *bufio.Reader
}

// DialWebsocket opens a websocket to host+path through the HTTP listener
// at addr. It returns the handshake's response; the connection is nil
// unless the answer was 101 with the right Sec-WebSocket-Accept.
func DialWebsocket(addr, host, path string) (*WebsocketConn, *http.Response, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		conn.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		return nil, resp, nil
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != websocketAccept(key) {
		conn.Close()
		return nil, resp, fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, websocketAccept(key))
	}
	return &WebsocketConn{conn: conn, br: br}, resp, nil
}

// Send writes a masked text frame and reads the next text frame back.
func (c *WebsocketConn) Send(text string) (string, error) {
	if err := writeFrame(c.conn, 1, []byte(text), true); err != nil {
		return "", err
	}
	op, payload, err := readFrame(c.br)
	if err != nil {
		return "", err
	}
	if op != 1 {
		return "", fmt.Errorf("frame opcode %d, want 1 (text)", op)
	}
	return string(payload), nil
}

// Close sends a close frame and closes the connection.
func (c *WebsocketConn) Close() {
	writeFrame(c.conn, 8, nil, true)
	c.conn.Close()
}

func writeFrame(w io.Writer, op byte, payload []byte, mask bool) error {
	hdr := []byte{0x80 | op}
	var m byte
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, m|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, m|126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, m|127), uint64(n))
	}
	body := payload
	if mask {
		var key [4]byte
		rand.Read(key[:])
		hdr = append(hdr, key[:]...)
		body = make([]byte, len(payload))
		for i, b := range payload {
			body[i] = b ^ key[i%4]
		}
	}
	_, err := w.Write(append(hdr, body...))
	return err
}

func readFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	var key [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err = io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return op, payload, nil
}
