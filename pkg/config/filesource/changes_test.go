package filesource

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/config"
)

const changeService = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop%s}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`

const changeEntry = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: shop}
spec:
  address: %s
  labels: {app: reviews}
`

// rewrite writes content and moves the file's time forward, so the source
// re-reads it whatever the clock's resolution.
func rewrite(t *testing.T, dir, rel, content string, at *time.Time) {
	t.Helper()
	write(t, dir, rel, content)
	*at = at.Add(time.Second)
	if err := os.Chtimes(filepath.Join(dir, rel), *at, *at); err != nil {
		t.Fatal(err)
	}
}

func keyList(m map[config.Key]struct{}) string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func TestSnapshotChanged(t *testing.T) {
	dir := t.TempDir()
	at := time.Now().Add(-time.Hour)
	s := newSource(t, dir)
	rewrite(t, dir, "vs.yaml", vs("ratings", "v1"), &at)
	rewrite(t, dir, "svc.yaml", fmt.Sprintf(changeService, "")+"---\n"+fmt.Sprintf(changeEntry, "10.0.0.1"), &at)
	prev, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		edit  func()
		want  string
		moved bool
	}{
		{"same content rewritten", func() { rewrite(t, dir, "vs.yaml", vs("ratings", "v1")+"\n# comment\n", &at) }, "", false},
		{"spec changed", func() { rewrite(t, dir, "vs.yaml", vs("ratings", "v2"), &at) }, "VirtualService default/ratings", false},
		{"resource moved to another file", func() {
			rewrite(t, dir, "vs.yaml", "", &at)
			rewrite(t, dir, "other.yaml", vs("ratings", "v2"), &at)
		}, "", true},
		{"exportTo annotation", func() {
			rewrite(t, dir, "svc.yaml", fmt.Sprintf(changeService, `, annotations: {networking.istio.io/exportTo: "."}`)+"---\n"+fmt.Sprintf(changeEntry, "10.0.0.1"), &at)
		}, "Service shop/reviews", false},
		{"label", func() {
			rewrite(t, dir, "svc.yaml", fmt.Sprintf(changeService, `, annotations: {networking.istio.io/exportTo: "."}, labels: {a: b}`)+"---\n"+fmt.Sprintf(changeEntry, "10.0.0.1"), &at)
		}, "Service shop/reviews", false},
		{"WorkloadEntry address", func() {
			rewrite(t, dir, "svc.yaml", fmt.Sprintf(changeService, `, annotations: {networking.istio.io/exportTo: "."}, labels: {a: b}`)+"---\n"+fmt.Sprintf(changeEntry, "10.0.0.2"), &at)
		}, "WorkloadEntry shop/reviews-1", false},
		{"invalid edit keeps the last good version", func() { rewrite(t, dir, "other.yaml", badVS("ratings"), &at) }, "", false},
		{"added and removed", func() {
			rewrite(t, dir, "other.yaml", "", &at)
			rewrite(t, dir, "new.yaml", vs("details", "v1"), &at)
		}, "VirtualService default/details; VirtualService default/ratings", false},
	}
	for _, st := range steps {
		st.edit()
		cur, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if got := keyList(cur.Changed(prev)); got != st.want {
			t.Errorf("%s: changed = %q, want %q", st.name, got, st.want)
		}
		if st.moved {
			if r := find(cur, config.KindVirtualService, "default", "ratings"); r == nil || !strings.HasSuffix(r.Source.File, "other.yaml") {
				t.Errorf("%s: the resource did not move: %+v", st.name, r)
			}
		}
		prev = cur
	}
}
