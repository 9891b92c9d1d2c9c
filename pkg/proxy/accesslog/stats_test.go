package accesslog

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

type failingWriter struct{ fail bool }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fail {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// statValues parses WriteStats' output.
func statValues(t *testing.T) map[string]int64 {
	t.Helper()
	var b bytes.Buffer
	WriteStats(&b)
	out := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		name, v, ok := strings.Cut(line, ": ")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("stats line %q", line)
		}
		out[name] = n
	}
	return out
}

// TestFileStats: lines buffered, file writes completed and failed, bytes
// waiting, and lines dropped beyond the buffer bound are counted in
// /stats under Envoy's filesystem.* names and
// sluice.access_log.lines_dropped.
func TestFileStats(t *testing.T) {
	w := &failingWriter{}
	s := &Sink{path: "test", w: w, kick: make(chan struct{}, 1)}
	before := statValues(t)
	delta := func(name string) int64 { return statValues(t)[name] - before[name] }

	s.write([]byte("one\n"))
	s.write([]byte("two\n"))
	if d := delta("filesystem.write_buffered"); d != 2 {
		t.Errorf("write_buffered +%d, want +2", d)
	}
	if d := delta("filesystem.write_total_buffered"); d != 8 {
		t.Errorf("write_total_buffered +%d, want +8", d)
	}
	s.Flush()
	if d := delta("filesystem.write_completed"); d != 1 || delta("filesystem.write_total_buffered") != 0 {
		t.Errorf("after a flush: write_completed +%d, write_total_buffered +%d", d, delta("filesystem.write_total_buffered"))
	}
	w.fail = true
	s.write([]byte("three\n"))
	s.Flush()
	if d := delta("filesystem.write_failed"); d != 1 {
		t.Errorf("write_failed +%d, want +1", d)
	}
	big := bytes.Repeat([]byte("x"), 1<<20)
	for range maxBuffered/len(big) + 2 {
		s.write(big)
	}
	if d := delta("sluice.access_log.lines_dropped"); d != 2 {
		t.Errorf("lines_dropped +%d, want +2", d)
	}
	if s.Dropped() != 3 {
		t.Errorf("sink dropped %d, want 3 (two lines, one failed write)", s.Dropped())
	}
	w.fail = false
	s.Flush()
	if d := delta("filesystem.write_total_buffered"); d != 0 {
		t.Errorf("write_total_buffered +%d after the last flush", d)
	}
}
