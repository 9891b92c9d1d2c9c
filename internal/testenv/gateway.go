package testenv

import (
	"strconv"
)

// GatewayOptions describe a router proxy (an ingress or egress gateway).
type GatewayOptions struct {
	// Name is the gateway workload's name (required).
	Name string
	// Namespace defaults to "istio-system".
	Namespace string
	// Labels select which Gateways it serves, e.g. istio=ingressgateway.
	Labels map[string]string
	// PortOffset is added to every Gateway port it listens on.
	PortOffset int
	// BindAddress defaults to 127.0.0.1 so tests never listen beyond loopback.
	BindAddress string
	// ServiceAccount is the gateway's identity (default "default").
	ServiceAccount string
}

// Gateway is a running router proxy.
type Gateway struct {
	Name, Namespace string
	AdminAddress    string
	PortOffset      int
	BindAddress     string
	Proxy           *Process
}

// AddGateway starts "sluice proxy --type router". It is ready as soon as it
// has config; its listeners follow the Gateways that select it, so tests
// wait for the behaviour they expect with WaitConverged.
func (m *Mesh) AddGateway(o GatewayOptions) *Gateway {
	m.t.Helper()
	if o.Name == "" {
		m.t.Fatalf("testenv: AddGateway: Name is required")
	}
	if o.Namespace == "" {
		o.Namespace = "istio-system"
	}
	if o.BindAddress == "" {
		o.BindAddress = "127.0.0.1"
	}
	g := &Gateway{Name: o.Name, Namespace: o.Namespace, PortOffset: o.PortOffset, BindAddress: o.BindAddress}
	id := o.Namespace + "/" + o.Name
	for attempt := 1; ; attempt++ {
		g.AdminAddress = FreeAddr()
		args := []string{"proxy", "--type", "router", "--name", o.Name, "--namespace", o.Namespace,
			"--labels", labelString(o.Labels), "--admin-address", g.AdminAddress,
			"--port-offset", strconv.Itoa(o.PortOffset), "--bind-address", o.BindAddress}
		if o.ServiceAccount != "" {
			args = append(args, "--service-account", o.ServiceAccount)
		}
		args = append(append(args, m.ProxyControlArgs()...), m.opts.ProxyArgs...)
		g.Proxy = Start(m.t, "gateway "+id, args...)
		err := pollHTTP("http://"+g.AdminAddress+"/", 200, StartTimeout, g.Proxy.Done())
		if err == nil {
			break
		}
		if attempt < startAttempts && g.Proxy.addrInUse() {
			g.Proxy.Stop()
			continue
		}
		m.t.Fatalf("testenv: gateway %s not up: %v\n%s", id, err, g.Proxy.Tail(dumpLines))
	}
	return g
}

// Address is where the gateway serves Gateway port p.
func (g *Gateway) Address(port int) string {
	return g.BindAddress + ":" + strconv.Itoa(port+g.PortOffset)
}
