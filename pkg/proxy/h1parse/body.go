package h1parse

import "io"

// Body is a message body of a known length read from R, as net/http reads
// one (its body over an io.LimitedReader): the last bytes come with
// io.EOF, and R ending before N bytes is io.ErrUnexpectedEOF.
type Body struct {
	R io.Reader
	N int64 // bytes left
}

func (b *Body) Read(p []byte) (int, error) {
	if b.N <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.N {
		p = p[:b.N]
	}
	n, err := b.R.Read(p)
	b.N -= int64(n)
	if b.N == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close does nothing: what an unread rest means for the connection is its
// owner's to decide (h1server drains it, the upstream pool closes it).
func (b *Body) Close() error { return nil }
