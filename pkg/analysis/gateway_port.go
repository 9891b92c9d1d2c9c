package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/gateway/gateway.go.
func init() {
	register(&Analyzer{
		Name:        "gateway.IngressGatewayPortAnalyzer",
		Workloads:   true,
		Description: "Checks a gateway's ports against the gateway's Kubernetes service ports",
		Codes:       []string{"IST0101", "IST0162"},
		run: func(c *Context) {
			for _, o := range c.Objects(config.KindGateway) {
				ingressGatewayPorts(c, o)
			}
		},
	})
}

// ingressGatewayPorts reports a Gateway whose selector matches no pod, and
// each server port that no Service selecting those pods offers (as a port
// or a targetPort).
func ingressGatewayPorts(c *Context, o *Object) {
	gw := o.Spec.(*networking.Gateway)
	servicePorts := map[uint32]bool{}
	portMapping := map[uint32]uint32{} // service port -> targetPort
	matches := 0
	for _, pod := range c.Objects(KindPod) {
		if !selects(gw.Selector, pod.Labels) {
			continue
		}
		matches++
		for _, so := range c.Objects(config.KindService) {
			if so.Namespace != pod.Namespace {
				continue // Services select pods in their own namespace only
			}
			svc := so.Spec.(*corev1.ServiceSpec)
			if !selects(svc.Selector, pod.Labels) {
				continue
			}
			for _, p := range svc.Ports {
				if p.Protocol != "TCP" {
					continue
				}
				if tp := p.TargetPort.IntValue(); tp != 0 {
					servicePorts[uint32(tp)] = true
					if _, ok := portMapping[uint32(p.Port)]; !ok {
						portMapping[uint32(p.Port)] = uint32(tp)
					}
				} else {
					servicePorts[uint32(p.Port)] = true
				}
			}
		}
	}
	sel := selectorString(gw.Selector)
	path := fmt.Sprintf(pathGatewaySelector, selectorLabel(sel))
	if matches == 0 {
		c.report(ReferencedResourceNotFound, o, path, "selector", sel)
		return
	}
	for _, srv := range gw.Servers {
		if srv.Port == nil {
			continue
		}
		n := srv.Port.Number
		if _, ok := portMapping[n]; !servicePorts[n] && !ok {
			c.report(GatewayPortNotDefinedOnService, o, path, int(n), sel)
		}
	}
}
