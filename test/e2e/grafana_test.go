package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestGrafanaDashboardsImportable: every grafana/*.json has its own uid, a
// Prometheus datasource variable that every panel and query uses (so it
// imports into any Grafana with any Prometheus datasource), and queries
// whose variables are its own or Grafana's. Whether the queries answer
// data is TestPrometheusGrafana's job.
func TestGrafanaDashboardsImportable(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "grafana", "*.json"))
	if len(files) < 4 {
		t.Fatalf("want the mesh, service, workload and control plane dashboards, have %v", files)
	}
	uids := map[string]string{}
	varRef := regexp.MustCompile(`\$\{?(\w+)`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID        string           `json:"uid"`
			Title      string           `json:"title"`
			Panels     []map[string]any `json:"panels"`
			Templating struct {
				List []struct{ Name, Type, Query any } `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		if d.UID == "" || d.Title == "" || uids[d.UID] != "" {
			t.Errorf("%s: uid %q (also %q), title %q", name, d.UID, uids[d.UID], d.Title)
		}
		uids[d.UID] = name
		vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
		hasDS := false
		for _, v := range d.Templating.List {
			vars[v.Name.(string)] = true
			if v.Type == "datasource" && v.Name == "datasource" && v.Query == "prometheus" {
				hasDS = true
			}
		}
		if !hasDS {
			t.Errorf("%s: no prometheus datasource variable", name)
		}
		var walk func(ps []any, where string)
		check := func(p map[string]any, where string) {
			if p["type"] == "row" || p["type"] == "text" {
				return
			}
			if ds, _ := p["datasource"].(map[string]any); ds == nil || ds["uid"] != "${datasource}" {
				t.Errorf("%s: panel %q: datasource %v, want uid ${datasource}", name, p["title"], p["datasource"])
			}
			targets, _ := p["targets"].([]any)
			if len(targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, where)
			}
			for _, tg := range targets {
				tm := tg.(map[string]any)
				expr, _ := tm["expr"].(string)
				if ds, _ := tm["datasource"].(map[string]any); expr == "" || ds == nil || ds["uid"] != "${datasource}" {
					t.Errorf("%s: panel %q: target %v", name, where, tm)
				}
				for _, m := range varRef.FindAllStringSubmatch(expr, -1) {
					if !vars[m[1]] {
						t.Errorf("%s: panel %q: query uses $%s, not a variable of the dashboard", name, where, m[1])
					}
				}
			}
		}
		walk = func(ps []any, where string) {
			for _, p := range ps {
				pm := p.(map[string]any)
				title, _ := pm["title"].(string)
				check(pm, title)
				sub, _ := pm["panels"].([]any)
				walk(sub, title)
			}
		}
		ps := make([]any, len(d.Panels))
		for i := range d.Panels {
			ps[i] = d.Panels[i]
		}
		walk(ps, "")
	}
}
