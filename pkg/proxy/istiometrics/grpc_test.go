package istiometrics

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func frame(payload int) []byte {
	b := make([]byte, 5+payload)
	binary.BigEndian.PutUint32(b[1:5], uint32(payload))
	return b
}

// TestGRPCMessages: messages are counted however the stream's bytes are
// split, including empty messages and prefixes split across writes.
func TestGRPCMessages(t *testing.T) {
	stream := bytes.Join([][]byte{frame(3), frame(0), frame(70000), frame(1), frame(0)}, nil)
	for _, chunk := range []int{1, 2, 4, 5, 7, 1000, len(stream)} {
		var g GRPCMessages
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			g.Feed(p[:n])
			p = p[n:]
		}
		if g.Count() != 5 {
			t.Errorf("chunks of %d: %d messages, want 5", chunk, g.Count())
		}
	}
	var g GRPCMessages
	g.Feed(frame(10)[:8]) // a message begun, not finished
	if g.Count() != 1 {
		t.Errorf("partial message: %d", g.Count())
	}
}
