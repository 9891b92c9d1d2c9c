package hbone

import (
	"io"
	"net"

	"golang.org/x/net/http2"
)

// pipe carries a served stream to its upstream both ways with half-close:
// the client's END_STREAM half-closes the upstream (CloseWrite), the
// upstream's EOF is END_STREAM to the client. A TCP error either way resets
// the stream with CONNECT_ERROR (RFC 9113 8.5) and aborts the upstream.
// The calling goroutine copies stream to upstream (WriteTo: no buffer of its
// own), one more the other way with a pooled buffer.
func pipe(st *stream, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := copyBuf(st, up); err != nil {
			st.reset(http2.ErrCodeConnect, err)
			up.Close()
			return
		}
		st.CloseWrite()
	}()
	if _, err := st.WriteTo(up); err != nil {
		st.reset(http2.ErrCodeConnect, err)
		up.Close()
	} else if cw, ok := up.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-done
	st.Close()
	up.Close()
}

// copyBuf copies until EOF (nil) or an error, with a pooled buffer.
func copyBuf(dst io.Writer, src io.Reader) error {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF { // exactly: a connection failure may wrap io.EOF
			return nil
		}
		if err != nil {
			return err
		}
	}
}
