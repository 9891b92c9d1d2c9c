package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/dashboard"
)

// background sends demo-like traffic until the test ends: for every 49
// product-service answers one aborted (2%: degraded), reviews half
// aborted (failure), ratings all good and 30 ms late.
func (tm *testMesh) background(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			host, path := "product-service:9080", "/"
			switch {
			case i%50 == 49:
				path = "/fail"
			case i%10 == 3:
				host, path = "reviews:9080", "/"
			case i%10 == 4:
				host, path = "reviews:9080", "/fail"
			case i%10 == 5:
				host, path = "ratings:9080", "/?delay=30ms"
			}
			tm.client.Get(host, path, nil)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	if err := tryJSON(url, into); err != nil {
		t.Fatal(err)
	}
}

func tryJSON(url string, into any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

type graphAnswer struct {
	Source string          `json:"source"`
	Errors []string        `json:"errors"`
	Data   dashboard.Graph `json:"data"`
}

type detailAnswer struct {
	Data dashboard.Detail `json:"data"`
}

// waitGraph polls the control plane's graph until every service node has
// the health wanted and the client's edges to them the mTLS mark
// (metrics reach the control plane scrape by scrape, the server side's
// possibly after the client's).
func waitGraph(t *testing.T, m *testenv.Mesh, want map[string]string) dashboard.Graph {
	t.Helper()
	var g graphAnswer
	err := testenv.Eventually(func() error {
		g = graphAnswer{}
		if err := tryJSON(m.URL("/dashboard/api/graph?window=30s"), &g); err != nil {
			return err
		}
		for id, health := range want {
			found := false
			for _, n := range g.Data.Nodes {
				if n.ID == id {
					found = true
					if n.Health != health {
						var d detailAnswer
						tryJSON(m.URL("/dashboard/api/service?window=30s&host="+n.Name), &d)
						return fmt.Errorf("node %s: health %s, want %s (codes %v)", id, n.Health, health, d.Data.Inbound.Codes)
					}
				}
			}
			if !found {
				return fmt.Errorf("no node %s yet (source %s, errors %v)", id, g.Source, g.Errors)
			}
		}
		client := dashboard.WorkloadID("default", "demo-client")
		for id, mtls := range wantMTLS {
			found := false
			for _, e := range g.Data.Edges {
				if e.Source == client && e.Target == id {
					found = true
					if e.MTLS != mtls {
						return fmt.Errorf("edge to %s: mTLS %s, want %s", id, e.MTLS, mtls)
					}
				}
			}
			if !found {
				return fmt.Errorf("no edge from the client to %s yet", id)
			}
		}
		return nil
	}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return g.Data
}

// wantMTLS are the mTLS marks of the client's edges to the services.
var wantMTLS = map[string]string{
	dashboard.ServiceID(productHost): "mutual_tls",
	dashboard.ServiceID(reviewsHost): "mutual_tls",
	dashboard.ServiceID(ratingsHost): "none",
}

// policiesYAML: a Sidecar and a PeerAuthentication for the namespace,
// an AuthorizationPolicy for product-service-v1.
const policiesYAML = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scope, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v1-only, namespace: default}
spec:
  selector: {matchLabels: {version: v1, app: product-service}}
  action: ALLOW
  rules: [{}]
`

var wantHealth = map[string]string{
	dashboard.ServiceID(productHost): dashboard.Degraded,
	dashboard.ServiceID(reviewsHost): dashboard.Failure,
	dashboard.ServiceID(ratingsHost): dashboard.Healthy,
}

// TestDashboardAPI runs `sluice control` scraping its proxies under
// traffic and reads every API of /dashboard/: the graph with Kiali's
// health classes, a service page with its callers and config, a workload
// page with its proxy's sync state, the config with a rejected resource,
// the proxies, the scraper's bounds.
func TestDashboardAPI(t *testing.T) {
	tm := newTestMesh(t, "--dashboard-scrape-interval", "300ms")
	tm.WriteConfig("broken.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}, weight: -1}]
`)
	// Valid, but the control plane's analysis finds its destination
	// missing (IST0101): shown as a warning with the message.
	tm.WriteConfig("ghost.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ghost, namespace: default}
spec:
  hosts: [ghost.example.com]
  http:
  - route: [{destination: {host: nowhere.default.svc.cluster.local}}]
`)
	tm.WriteConfig("policies.yaml", policiesYAML)
	tm.WaitSynced(30 * time.Second)
	tm.background(t)
	g := waitGraph(t, tm.Mesh, wantHealth)
	client := dashboard.WorkloadID("default", "demo-client")
	e := edge(t, g, client, dashboard.ServiceID(productHost))
	if e.RPS <= 0 || e.MTLS != "mutual_tls" || e.P99 == nil {
		t.Errorf("client -> product-service: %+v", e.Stats)
	}
	if e := edge(t, g, client, dashboard.ServiceID(ratingsHost)); e.MTLS != "none" {
		t.Errorf("client -> ratings: want plaintext, got %+v", e.Stats)
	}

	var svc detailAnswer
	getJSON(t, tm.URL("/dashboard/api/service?host="+productHost+"&window=30s"), &svc)
	d := svc.Data
	if d.Health != dashboard.Degraded || len(d.Callers) != 1 || d.Callers[0].ID != client || len(d.Callees) != 2 ||
		d.Inbound.Codes["200"] <= 0 || d.Inbound.Codes["503"] <= 0 || d.Inbound.P50 == nil {
		t.Errorf("product-service page: %+v", d)
	}
	if got := fmt.Sprint(d.Config); !strings.Contains(got, "VirtualService default product-service routes (mesh)") ||
		!strings.Contains(got, "DestinationRule default product-service traffic policy") {
		t.Errorf("product-service config: %s", got)
	}

	var wl detailAnswer
	getJSON(t, tm.URL("/dashboard/api/workload?namespace=default&name="+tm.v1.Name), &wl)
	if got := fmt.Sprint(wl.Data.Config); !strings.Contains(got, "Sidecar default scope sidecar scope") ||
		!strings.Contains(got, "AuthorizationPolicy default v1-only authorization ALLOW") ||
		!strings.Contains(got, "PeerAuthentication default strict mTLS (namespace)") {
		t.Errorf("product-service-v1 config: %s", got)
	}
	if d := wl.Data; len(d.Proxies) != 1 || d.Labels["version"] != "v1" || len(d.Callers) != 1 || d.Callers[0].ID != dashboard.ServiceID(productHost) {
		t.Errorf("workload page: %+v", d)
	} else {
		for _, ts := range d.Proxies[0].Types {
			if ts.Status != "SYNCED" {
				t.Errorf("workload proxy %s: %s", ts.Type, ts.Status)
			}
		}
	}

	checkConfigAPI(t, tm.Mesh)

	var px struct{ Proxies []json.RawMessage }
	getJSON(t, tm.URL("/dashboard/api/proxies"), &px)
	var b dashboard.Bounds
	getJSON(t, tm.URL("/dashboard/api/bounds"), &b)
	if len(px.Proxies) != 5 || b.Proxies != 5 || b.Slots > 5*b.SlotsPerProxy {
		t.Errorf("proxies %d, bounds %+v", len(px.Proxies), b)
	}
}

// checkConfigAPI: the rejected VirtualService is listed as an error
// naming its field, product-service's as valid.
func checkConfigAPI(t *testing.T, m *testenv.Mesh) {
	t.Helper()
	var cfg struct{ Entries []dashboard.ConfigEntry }
	err := testenv.Eventually(func() error {
		cfg.Entries = nil
		if err := tryJSON(m.URL("/dashboard/api/config"), &cfg); err != nil {
			return err
		}
		broken, ghost := false, false
		for _, e := range cfg.Entries {
			msgs := strings.Join(e.Messages, " ")
			broken = broken || e.Name == "broken" && e.Status == dashboard.StatusError && strings.Contains(msgs, "weight")
			ghost = ghost || e.Name == "ghost" && e.Status == dashboard.StatusWarning && strings.Contains(msgs, "[IST0101]")
		}
		if !broken || !ghost {
			return fmt.Errorf("broken VirtualService (rejected) or ghost (analysis IST0101) not reported: %+v", cfg.Entries)
		}
		return nil
	}, 10*time.Second)
	if err != nil {
		t.Error(err)
	}
	for _, e := range cfg.Entries {
		if e.Name == "product-service" && e.Kind == "VirtualService" && e.Status != dashboard.StatusValid {
			t.Errorf("product-service VirtualService: %+v", e)
		}
	}
}
