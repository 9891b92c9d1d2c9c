package serverconn

import (
	"context"
	"testing"
	"time"
)

func TestConns(t *testing.T) {
	var s Conns[int]
	for i := range 3 {
		if !s.Add(i) {
			t.Fatalf("Add(%d) refused before Drain", i)
		}
	}
	s.Remove(1)
	if n := s.Count(func(c int) bool { return c != 0 }); n != 1 {
		t.Errorf("Count kept %d, want 1 (only 2 is left that is not 0)", n)
	}
	s.Drain()
	if !s.Draining() || s.Add(4) {
		t.Error("a draining set still takes connections")
	}
	if n := s.Count(func(int) bool { return true }); n != 2 {
		t.Errorf("%d connections after Drain, want the 2 open ones", n)
	}
}

func TestAwait(t *testing.T) {
	left := 3
	if !Await(context.Background(), func() int { left--; return left }) {
		t.Error("Await gave up although none was left")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if Await(ctx, func() int { return 1 }) {
		t.Error("Await reported none left while one was")
	}
}
