package controlplane

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// WorkloadMTLS is, for one connected sidecar, the effective
// PeerAuthentication of each inbound port and how many connections each
// took in plaintext and in mTLS since the proxy started: what to look at
// before switching a namespace to STRICT.
type WorkloadMTLS struct {
	Proxy     string `json:"proxy"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Policies are the PeerAuthentications composed, most general first
	// ("mesh istio-system/default"); none means Istio's default, PERMISSIVE.
	Policies []string   `json:"policies"`
	Ports    []PortMTLS `json:"ports"`
	// StatsError says why the counters could not be read, if they could not.
	StatsError string `json:"stats_error,omitempty"`
	// Unlabelled are the endpoints this sidecar serves (an inbound
	// address equal to the endpoint's) whose workload lacks
	// security.istio.io/tlsMode: istio: clients send them plaintext, and
	// under STRICT their calls fail (docs/security.md).
	Unlabelled []string `json:"unlabelled_endpoints,omitempty"`
}

// PortMTLS is one inbound port of a workload.
type PortMTLS struct {
	Port     uint32 `json:"port"`
	Listener string `json:"listener"`
	// Mode is STRICT, PERMISSIVE or DISABLE.
	Mode string `json:"mode"`
	// MTLS and Plaintext count the listener's connections
	// (listener.<name>.downstream_cx_mtls / _plaintext in the proxy's
	// /stats); null when the proxy does not report them.
	MTLS      *uint64 `json:"mtls_connections"`
	Plaintext *uint64 `json:"plaintext_connections"`
}

// statsTimeout bounds reading one proxy's /stats.
const statsTimeout = time.Second

// maxStatsBytes bounds what is read of one proxy's /stats.
const maxStatsBytes = 8 << 20

// mtlsStatusOptions are the inputs of mtlsStatus.
type mtlsStatusOptions struct {
	push    *model.PushContext
	proxies []*model.Proxy
	// listeners returns the listeners last published to a proxy.
	listeners func(id string) []*listener.Listener
	// stats reads a proxy's counters from its admin address.
	stats func(ctx context.Context, admin string) (map[string]uint64, error)
}

// mtlsStatus builds the mTLS view of every connected sidecar: its inbound
// listeners as last published (virtualInbound_<port>), the mode of each
// port from the push's PeerAuthentications, and the proxy's counters,
// read from the admin address it announced (SLUICE_ADMIN_ADDRESS), all
// proxies at once.
func mtlsStatus(ctx context.Context, o mtlsStatusOptions) []WorkloadMTLS {
	out := []WorkloadMTLS{}
	var admins []string
	for _, p := range o.proxies {
		if p.Type != model.Sidecar || o.push == nil {
			continue
		}
		pa := o.push.PeerAuthenticationFor(p.Namespace, p.Labels)
		w := WorkloadMTLS{Proxy: p.ID, Name: p.Name, Namespace: p.Namespace, Policies: append([]string{}, pa.From...), Ports: []PortMTLS{}}
		for _, l := range o.listeners(p.ID) {
			if !strings.HasPrefix(l.Name, xdsgen.InboundListenerName+"_") {
				continue
			}
			sa := l.GetAddress().GetSocketAddress()
			mode := pa.ModeForPorts(o.push.WorkloadPorts(sa.GetAddress(), sa.GetPortValue()))
			w.Ports = append(w.Ports, PortMTLS{Port: sa.GetPortValue(), Listener: l.Name, Mode: mode.String()})
		}
		sort.Slice(w.Ports, func(i, j int) bool { return w.Ports[i].Port < w.Ports[j].Port })
		w.Unlabelled = unlabelledEndpoints(o.push, p)
		out = append(out, w)
		admins = append(admins, p.AdminAddress)
	}
	var wg sync.WaitGroup
	for i := range out {
		if admins[i] == "" {
			out[i].StatsError = "the proxy announces no admin address (" + model.MetaAdminAddress + ")"
			continue
		}
		wg.Add(1)
		go func(w *WorkloadMTLS, admin string) {
			defer wg.Done()
			stats, err := o.stats(ctx, admin)
			if err != nil {
				w.StatsError = err.Error()
				return
			}
			for j := range w.Ports {
				p := &w.Ports[j]
				p.MTLS = counter(stats, "listener."+p.Listener+".downstream_cx_mtls")
				p.Plaintext = counter(stats, "listener."+p.Listener+".downstream_cx_plaintext")
			}
		}(&out[i], admins[i])
	}
	wg.Wait()
	return out
}

// unlabelledEndpoints lists, as "<service> <workload> <address>", the
// endpoints at one of the sidecar's inbound addresses that do not carry
// the tlsMode label; an inbound address on 0.0.0.0 or :: matches any IP
// of the proxy's.
func unlabelledEndpoints(pc *model.PushContext, p *model.Proxy) []string {
	addrs := map[string]bool{}
	for _, in := range p.Inbound {
		host, port, err := net.SplitHostPort(in.Address)
		if err != nil {
			continue
		}
		addrs[net.JoinHostPort(host, port)] = true
		if host == "0.0.0.0" || host == "::" {
			for _, ip := range p.IPs {
				addrs[net.JoinHostPort(ip, port)] = true
			}
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, svc := range pc.Services() {
		for _, port := range svc.Ports {
			for _, ep := range pc.Endpoints(svc, port.Number) {
				addr := net.JoinHostPort(ep.Address, strconv.FormatUint(uint64(ep.Port), 10))
				if !addrs[addr] || ep.Labels[xdsgen.TLSModeLabel] == xdsgen.TLSModeIstio {
					continue
				}
				line := svc.Hostname + " " + ep.Workload + " " + addr
				if !seen[line] {
					seen[line] = true
					out = append(out, line)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func counter(stats map[string]uint64, name string) *uint64 {
	v, ok := stats[name]
	if !ok {
		return nil
	}
	return &v
}

// fetchStats reads a proxy's /stats ("name: value" lines, Envoy's text
// format), keeping the numeric ones.
func fetchStats(ctx context.Context, admin string) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &statsError{admin: admin, status: resp.Status}
	}
	return parseStats(io.LimitReader(resp.Body, maxStatsBytes))
}

type statsError struct{ admin, status string }

func (e *statsError) Error() string { return "http://" + e.admin + "/stats: " + e.status }

// parseStats reads Envoy's text /stats; lines that are not "name: number"
// (histograms, text) are skipped.
func parseStats(r io.Reader) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, sc.Err()
}

// publishedListeners are the listeners in a proxy's last snapshot.
func publishedListeners(snap *xdsserver.Snapshot) []*listener.Listener {
	if snap == nil {
		return nil
	}
	var out []*listener.Listener
	for _, r := range snap.GetResources(resourcev3.ListenerType) {
		if l, ok := r.(*listener.Listener); ok {
			out = append(out, l)
		}
	}
	return out
}
