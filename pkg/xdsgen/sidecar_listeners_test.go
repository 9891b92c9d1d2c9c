package xdsgen_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// generateYAML generates for proxy from a YAML string (through generate:
// decode, validate, ValidateAll, snapshot consistency).
func generateYAML(t *testing.T, yaml string, proxy model.Proxy, mesh *meshv1alpha1.MeshConfig) *xdsgen.Resources {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return generate(t, file, proxy, mesh)
}

// inboundView is what an inbound port came out as: listener address, HTTP
// or TCP, and the app endpoint of its cluster.
type inboundView struct{ address, kind, app string }

func inboundOf(res *xdsgen.Resources) map[string]inboundView {
	clusters := map[string]*cluster.Cluster{}
	for _, c := range res.Clusters {
		clusters[c.Name] = c
	}
	out := map[string]inboundView{}
	for _, l := range res.Listeners {
		if !strings.HasPrefix(l.Name, xdsgen.InboundListenerName) {
			continue
		}
		sa := l.Address.GetSocketAddress()
		v := inboundView{address: sa.Address + ":" + itoa(int(sa.GetPortValue()))}
		kinds := map[string]bool{}
		for _, fc := range l.FilterChains {
			kinds[fc.Filters[len(fc.Filters)-1].Name] = true
		}
		switch {
		case len(kinds) > 1:
			v.kind = "sniff" // HTTP and TCP chains: protocol sniffed
		case kinds[xdsgen.TCPProxyFilter]:
			v.kind = "tcp"
		default:
			v.kind = "http"
		}
		c := clusters["inbound|"+itoa(int(sa.GetPortValue()))+"||"]
		ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
		if p := ep.GetPipe(); p != nil {
			v.app = "unix://" + p.Path
		} else {
			v.app = ep.GetSocketAddress().Address + ":" + itoa(int(ep.GetSocketAddress().GetPortValue()))
		}
		out[l.Name] = v
	}
	return out
}

const twoPortWorkload = `apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: http, port: 8080}, {name: tcp-data, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-0, namespace: default}
spec:
  address: 127.0.0.1
  labels: {app: db}
  ports: {http: 20001, tcp-data: 20002}
`

func dbSidecar(inbound ...model.InboundPort) model.Proxy {
	return model.Proxy{Type: model.Sidecar, Name: "db-0", Namespace: "default", Labels: map[string]string{"app": "db"},
		IPs: []string{"127.0.0.1"}, OutboundAddress: "127.0.0.1:15001", Inbound: inbound}
}

// TestInboundPorts: one inbound listener per port of the workload, each
// with the protocol of the service port mapped to it; a Sidecar's ingress
// listeners replace them, bound as docs/config.md says.
func TestInboundPorts(t *testing.T) {
	pairs := []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}
	cases := []struct {
		name      string
		yaml      string
		inbound   []model.InboundPort
		want      map[string]inboundView
		conflicts []string
	}{{
		name: "pairs by protocol", yaml: twoPortWorkload, inbound: pairs,
		want: map[string]inboundView{
			"virtualInbound_20001": {"127.0.0.1:20001", "http", "127.0.0.1:30001"},
			"virtualInbound_20002": {"127.0.0.1:20002", "tcp", "127.0.0.1:30002"},
		},
	}, {
		name: "undeclared port is sniffed", yaml: twoPortWorkload,
		inbound: []model.InboundPort{{Address: "127.0.0.1:20003", App: "127.0.0.1:30003"}},
		want:    map[string]inboundView{"virtualInbound_20003": {"127.0.0.1:20003", "sniff", "127.0.0.1:30003"}},
	}, {
		name: "app on a unix socket", yaml: twoPortWorkload,
		inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "unix:///run/app.sock"}},
		want:    map[string]inboundView{"virtualInbound_20001": {"127.0.0.1:20001", "http", "unix:///run/app.sock"}},
	}, {
		name: "ingress replaces the app and drops uncovered pairs", inbound: pairs,
		yaml: twoPortWorkload + `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: db, namespace: default}
spec:
  workloadSelector: {labels: {app: db}}
  ingress:
  - {port: {number: 20001, protocol: HTTP, name: http}, defaultEndpoint: "unix:///run/db.sock"}
  - {port: {number: 20005, protocol: TCP, name: tcp}, defaultEndpoint: "0.0.0.0:7000"}
  - {port: {number: 20006, protocol: HTTP, name: http-admin}, bind: 127.0.0.9, defaultEndpoint: "127.0.0.1:7001"}
  - {port: {number: 20007, protocol: HTTP, name: http-nothing}}
  - {port: {number: 20008, name: custom}, defaultEndpoint: "127.0.0.1:7002"}
`,
		want: map[string]inboundView{
			"virtualInbound_20001": {"127.0.0.1:20001", "http", "unix:///run/db.sock"},
			"virtualInbound_20005": {"127.0.0.1:20005", "tcp", "127.0.0.1:7000"},
			"virtualInbound_20006": {"127.0.0.9:20006", "http", "127.0.0.1:7001"},
			"virtualInbound_20008": {"127.0.0.1:20008", "sniff", "127.0.0.1:7002"},
		},
		conflicts: []string{"spec.ingress[3]: port 20007 has no defaultEndpoint", "inbound address 127.0.0.1:20002: not served"},
	}, {
		name: "ingress without defaultEndpoint keeps the pair's app", inbound: pairs,
		yaml: twoPortWorkload + `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: db, namespace: default}
spec:
  ingress:
  - {port: {number: 20002, protocol: HTTP, name: http}}
  - {port: {number: 20001, protocol: TCP, name: tcp}}
`,
		want: map[string]inboundView{
			"virtualInbound_20001": {"127.0.0.1:20001", "tcp", "127.0.0.1:30001"},
			"virtualInbound_20002": {"127.0.0.1:20002", "http", "127.0.0.1:30002"},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := generateYAML(t, tc.yaml, dbSidecar(tc.inbound...), nil)
			got := inboundOf(res)
			if len(got) != len(tc.want) {
				t.Errorf("inbound listeners %v, want %v", got, tc.want)
			}
			for name, w := range tc.want {
				if got[name] != w {
					t.Errorf("%s: got %+v, want %+v", name, got[name], w)
				}
			}
			all := strings.Join(res.Conflicts, "\n")
			for _, c := range tc.conflicts {
				if !strings.Contains(all, c) {
					t.Errorf("no conflict %q in:\n%s", c, all)
				}
			}
			if len(res.Conflicts) != len(tc.conflicts) {
				t.Errorf("conflicts:\n%s\nwant %d", all, len(tc.conflicts))
			}
		})
	}
}

const egressServices = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi, namespace: default}
spec:
  hosts: [multi.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: http-alt, protocol: HTTP}, {number: 7000, name: tcp, protocol: TCP}, {number: 7001, name: tcp-alt, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: default}
spec:
  hosts: [other.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`

// TestEgressListenerPorts: an egress listener imports its hosts on its
// port only; the catch-all serves the ports no listener names; a port
// nothing covers gets no virtual host and no TCP listener.
func TestEgressListenerPorts(t *testing.T) {
	cases := []struct {
		name     string
		egress   string
		vhosts   []string // virtual hosts of the outbound route table, catch-all and CONNECT excluded
		tcpPorts []string
		connect  []string // CONNECT virtual hosts: the opaque ports, as the TCP listeners
		clusters []string // outbound clusters
	}{{
		name:   "ports only",
		egress: `[{port: {number: 8080, protocol: HTTP, name: http}, hosts: ["./multi.example.com"]}, {port: {number: 7000, protocol: TCP, name: tcp}, hosts: ["./*"]}]`,
		vhosts: []string{"multi.example.com:8080"}, tcpPorts: []string{"127.0.0.5_7000"},
		connect:  []string{"connect:multi.example.com:7000"},
		clusters: []string{"outbound|7000||multi.example.com", "outbound|8080||multi.example.com"},
	}, {
		name:   "port listener then catch-all",
		egress: `[{port: {number: 8080, protocol: HTTP, name: http}, hosts: ["./other.example.com"]}, {hosts: ["./multi.example.com"]}]`,
		vhosts: []string{"multi.example.com:9090", "other.example.com:8080"}, tcpPorts: []string{"127.0.0.5_7000", "127.0.0.5_7001"},
		connect:  []string{"connect:multi.example.com:7000", "connect:multi.example.com:7001"},
		clusters: []string{"outbound|7000||multi.example.com", "outbound|7001||multi.example.com", "outbound|8080||other.example.com", "outbound|9090||multi.example.com"},
	}, {
		name:   "listener protocol overrides the service port's",
		egress: `[{port: {number: 7001, protocol: HTTP, name: http}, hosts: ["./*"]}, {port: {number: 9090, protocol: TCP, name: tcp}, hosts: ["./*"]}]`,
		vhosts: []string{"multi.example.com:7001"}, tcpPorts: []string{"127.0.0.5_9090"},
		connect:  []string{"connect:multi.example.com:9090"},
		clusters: []string{"outbound|7001||multi.example.com", "outbound|9090||multi.example.com"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yaml := egressServices + `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: ` + tc.egress + "\n"
			p := sidecar("client", nil)
			p.OutboundTCPIP = "127.0.0.5"
			res := generateYAML(t, yaml, p, nil)
			var vhosts, tcp, connect []string
			for _, rc := range res.Routes {
				if rc.Name != xdsgen.OutboundRouteName {
					continue
				}
				for _, vh := range rc.VirtualHosts {
					switch {
					case strings.HasPrefix(vh.Name, "connect:"):
						connect = append(connect, vh.Name)
					case vh.Name != "allow_any" && vh.Name != "block_all":
						vhosts = append(vhosts, vh.Name)
					}
				}
			}
			slices.Sort(connect)
			if !slices.Equal(connect, tc.connect) {
				t.Errorf("CONNECT virtual hosts %v, want %v", connect, tc.connect)
			}
			for _, l := range res.Listeners {
				if strings.HasPrefix(l.Name, "127.0.0.5_") {
					tcp = append(tcp, l.Name)
				}
			}
			var clusters []string
			for _, c := range res.Clusters {
				if strings.HasPrefix(c.Name, "outbound|") {
					clusters = append(clusters, c.Name)
				}
			}
			slices.Sort(clusters)
			if !slices.Equal(clusters, tc.clusters) {
				t.Errorf("clusters %v, want %v", clusters, tc.clusters)
			}
			slices.Sort(vhosts)
			slices.Sort(tcp)
			if !slices.Equal(vhosts, tc.vhosts) {
				t.Errorf("virtual hosts %v, want %v", vhosts, tc.vhosts)
			}
			if !slices.Equal(tcp, tc.tcpPorts) {
				t.Errorf("TCP listeners %v, want %v", tcp, tc.tcpPorts)
			}
		})
	}
}

// TestBoundEgressListener: an egress listener with a bind address gets a
// socket of its own at bind:port serving its hosts on that port: HTTP with
// a route table of that port (a bare host means that port), or TCP; the
// port is then not served at the outbound TCP IP.
func TestBoundEgressListener(t *testing.T) {
	yaml := egressServices + `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - {port: {number: 9090, protocol: HTTP, name: http}, bind: 127.0.0.7, hosts: ["./multi.example.com"]}
  - {port: {number: 7000, name: tcp}, bind: 127.0.0.7, hosts: ["./*"]}
  - {hosts: ["./*"]}
`
	p := sidecar("client", nil)
	p.OutboundTCPIP = "127.0.0.5"
	res := generateYAML(t, yaml, p, nil)
	byName := map[string]string{}
	for _, l := range res.Listeners {
		kind := "http"
		if fs := l.FilterChains[0].Filters; fs[len(fs)-1].Name == xdsgen.TCPProxyFilter {
			kind = "tcp"
		}
		sa := l.Address.GetSocketAddress()
		if sa == nil {
			continue // the internal listener serving CONNECT tunnels
		}
		byName[l.Name] = kind + "@" + sa.Address + ":" + itoa(int(sa.GetPortValue()))
	}
	for name, want := range map[string]string{
		"127.0.0.7_9090": "http@127.0.0.7:9090",
		"127.0.0.7_7000": "tcp@127.0.0.7:7000",
		"127.0.0.5_7001": "tcp@127.0.0.5:7001",
	} {
		if byName[name] != want {
			t.Errorf("listener %s: got %q, want %q", name, byName[name], want)
		}
	}
	if _, ok := byName["127.0.0.5_7000"]; ok {
		t.Errorf("port 7000 binds at 127.0.0.7; it must not also be served at the outbound TCP IP")
	}
	var table []string
	for _, rc := range res.Routes {
		if rc.Name != "9090" {
			continue
		}
		for _, vh := range rc.VirtualHosts {
			table = append(table, vh.Name+"="+strings.Join(vh.Domains, ","))
		}
	}
	want := []string{"multi.example.com:9090=multi.example.com,multi.example.com:9090", "allow_any=*"}
	if !slices.Equal(table, want) {
		t.Errorf("route table 9090: %v, want %v", table, want)
	}
}
