package istiometrics

import "sync/atomic"

// GRPCMessages counts the gRPC messages of one direction of a stream as
// its bytes pass, as Envoy's grpc_stats filter does for Istio's
// istio_request_messages_total / istio_response_messages_total: each
// message is a 5-byte prefix (compressed flag, 4-byte big-endian length)
// and that many bytes (gRPC over HTTP/2, "Length-Prefixed-Message"). The
// bytes may arrive in any chunking. The zero value is ready; it is used
// by one goroutine at a time; Count may be read from another.
type GRPCMessages struct {
	// n is the number of messages whose prefix has been seen.
	n atomic.Uint64
	// hdr collects a prefix split across writes; hdrN is how much of it
	// has arrived.
	hdr  [5]byte
	hdrN int
	// left is what remains of the current message's payload.
	left uint64
}

// Feed counts the messages begun in p.
func (g *GRPCMessages) Feed(p []byte) {
	for len(p) > 0 {
		if g.left > 0 {
			n := uint64(len(p))
			if n > g.left {
				n = g.left
			}
			g.left -= n
			p = p[n:]
			continue
		}
		n := copy(g.hdr[g.hdrN:], p)
		g.hdrN += n
		p = p[n:]
		if g.hdrN < len(g.hdr) {
			return
		}
		g.n.Add(1)
		g.hdrN = 0
		g.left = uint64(g.hdr[1])<<24 | uint64(g.hdr[2])<<16 | uint64(g.hdr[3])<<8 | uint64(g.hdr[4])
	}
}

// Count is the number of messages begun so far.
func (g *GRPCMessages) Count() uint64 { return g.n.Load() }
