package router

import (
	"net/http"
	"testing"
)

func TestHeaderOps(t *testing.T) {
	h := http.Header{"X-Keep": {"1"}, "X-Drop": {"1"}, "X-Over": {"old"}, "X-App": {"a"}}
	ops := HeaderOps{Remove: []string{"X-Drop"}, Edits: []HeaderEdit{
		{Name: "X-Over", Value: "new", Mode: 'o'},
		{Name: "X-App", Value: "b", Mode: 'a'},
		{Name: "X-Keep", Value: "no", Mode: 'i'},
		{Name: "X-Missing", Value: "no", Mode: 'x'},
	}}
	ops.Apply(h)
	if h.Get("X-Drop") != "" || h.Get("X-Over") != "new" || len(h["X-App"]) != 2 || h.Get("X-Keep") != "1" || h.Get("X-Missing") != "" {
		t.Errorf("header ops applied wrongly: %v", h)
	}
}
