package inspect

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/sluice-mesh/sluice/internal/hostport"
)

// Endpoint is one host of one cluster as the proxy holds it: istioctl's
// endpoint row (istio/istio istioctl/pkg/writer/envoy/clusters/clusters.go
// PrintEndpointsSummary).
type Endpoint struct {
	Endpoint string `json:"endpoint"`
	// Status is the host's EDS health status (HEALTHY when EDS gave
	// none, as Envoy reports it).
	Status string `json:"status"`
	// OutlierCheck is FAILED while outlier detection ejects the host.
	OutlierCheck string `json:"outlier_check"`
	Cluster      string `json:"cluster"`
}

// ProxyEndpoints reads the hosts of every cluster from the proxy's admin
// /clusters (Envoy's text form: cluster::host::health_flags::...), with
// their EDS health from the control plane's EDS for that proxy.
func ProxyEndpoints(hc *http.Client, adminAddress string, eds []*endpoint.ClusterLoadAssignment) ([]Endpoint, error) {
	resp, err := hc.Get("http://" + adminAddress + "/clusters")
	if err != nil {
		return nil, fmt.Errorf("proxy admin: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy admin %s/clusters: %s", adminAddress, resp.Status)
	}
	health := map[string]string{}
	for _, cla := range eds {
		for _, llb := range cla.GetEndpoints() {
			for _, ep := range llb.GetLbEndpoints() {
				a := ep.GetEndpoint().GetAddress().GetSocketAddress()
				addr := hostport.Join(a.GetAddress(), a.GetPortValue())
				health[cla.GetClusterName()+"::"+addr] = edsHealth(ep.GetHealthStatus())
			}
		}
	}
	var out []Endpoint
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndex(line, "::health_flags::")
		c, _, ok := strings.Cut(line, "::")
		if i < 0 || !ok {
			continue
		}
		addr := line[len(c)+2 : i]
		e := Endpoint{Endpoint: addr, Status: "HEALTHY", OutlierCheck: "OK", Cluster: c}
		if h, ok := health[c+"::"+addr]; ok {
			e.Status = h
		}
		if strings.Contains(line[i:], "/failed_outlier_check") {
			e.OutlierCheck = "FAILED"
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proxy admin %s/clusters: %w", adminAddress, err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Endpoint != out[j].Endpoint {
			return out[i].Endpoint < out[j].Endpoint
		}
		return out[i].Cluster < out[j].Cluster
	})
	return out, nil
}

func edsHealth(h core.HealthStatus) string {
	if h == core.HealthStatus_UNKNOWN {
		return core.HealthStatus_HEALTHY.String()
	}
	return h.String()
}

// WriteEndpoints prints ENDPOINT STATUS OUTLIER CHECK CLUSTER.
func WriteEndpoints(w io.Writer, eps []Endpoint) error {
	tw := new(tabwriter.Writer).Init(w, 0, 8, 5, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER")
	for _, e := range eps {
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", e.Endpoint, e.Status, e.OutlierCheck, e.Cluster)
	}
	return tw.Flush()
}
