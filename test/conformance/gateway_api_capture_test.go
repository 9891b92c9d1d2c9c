package conformance

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// Mesh checks whose request names its destination only by the address
// connected to (a Host header naming another service: MeshFrontendHostname)
// run from a captured pod, as on Kubernetes: the client is an app in a
// network namespace whose traffic `sluice capture` redirects to its sidecar
// (--interception-mode REDIRECT), and it connects to the destination
// Service's cluster IP. The case's Services get cluster IPs as an API
// server allocates them, and its workloads pod IPs the namespace reaches
// over its veth pair.

// hostHeaderDiffers reports whether a check sets a Host header other than
// its destination.
func hostHeaderDiffers(ch *Check) bool {
	for k, v := range ch.Request.Headers {
		if strings.EqualFold(k, "host") && (ch.Request.Host == nil || v != *ch.Request.Host) {
			return true
		}
	}
	return false
}

// needsCapture: a mesh check whose destination is not what its Host says.
func (g gatewayAPIGroup) needsCapture(ch *Check) bool {
	return g.mesh && ch.Via.MeshClient != nil && ch.Request.Host != nil && hostHeaderDiffers(ch)
}

// captureUnavailable says why this machine cannot capture ("" when it
// can): network namespaces and iptables need root, ip and iptables.
func captureUnavailable() string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, c := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "traffic capture in a network namespace needs " + strings.Join(missing, ", ")
}

// serviceCIDR is where the runner allocates cluster IPs, as an API
// server allocates them from its service CIDR (10.96.0.0/12 is
// kube-apiserver's default).
const serviceCIDRPrefix = "10.96.0."

// allocateClusterIP gives a Service document without one a cluster IP
// (the n-th of the case) and records it; a headless Service ("None") and
// one with its own address keep theirs.
func (d *gwCase) allocateClusterIP(obj map[string]any, key string) {
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		obj["spec"] = spec
	}
	ip, _ := spec["clusterIP"].(string)
	if ip == "" {
		d.nextVIP++
		ip = serviceCIDRPrefix + strconv.Itoa(10+d.nextVIP)
		spec["clusterIP"] = ip
	}
	if ip != "None" {
		if d.vips == nil {
			d.vips = map[string]string{}
		}
		d.vips[key] = ip
	}
}

// startCaptured starts the captured pods the checks needing capture send
// from: one per mesh client, named and labelled as that workload.
func (e *gwEnv) startCaptured(g gatewayAPIGroup, checks []*Check) {
	for _, ch := range checks {
		if !g.needsCapture(ch) {
			continue
		}
		mc := ch.Via.MeshClient
		key := mc.Namespace + "/" + mc.Workload
		if e.captured[key] != nil {
			continue
		}
		var labels map[string]string
		for _, w := range e.data.workloads {
			if w.Namespace == mc.Namespace && w.Name == mc.Workload {
				labels = w.Labels
			}
		}
		e.captured[key] = e.mesh.AddCaptured(testenv.CapturedOptions{Name: mc.Workload, Namespace: mc.Namespace, Labels: labels})
	}
}

// sendCaptured sends from a captured pod to the cluster IP of the
// Service host names (resolved as the pod's DNS would: name, name.ns,
// name.ns.svc[.cluster.local], in the client's namespace by default), on
// host's port or 80, with the check's Host header.
func (e *gwEnv) sendCaptured(c *testenv.Captured, method, host, path string, headers map[string]string) (*testenv.Response, error) {
	name, port := host, "80"
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	ns := c.Namespace
	name = strings.TrimSuffix(strings.TrimSuffix(name, "."+meshconfig.DefaultClusterLocalDomain), ".svc")
	if n, namespace, ok := strings.Cut(name, "."); ok {
		name, ns = n, namespace
	}
	vip := e.data.vips[ns+"/"+name]
	if vip == "" {
		return nil, fmt.Errorf("%s: no Service %s/%s with a cluster IP to connect to", host, ns, name)
	}
	req, err := http.NewRequest(method, "http://"+net.JoinHostPort(vip, port)+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	for k, v := range headers {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return testenv.Send(c.HTTP, req)
}
