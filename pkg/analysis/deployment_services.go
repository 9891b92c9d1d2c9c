package analysis

import (
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/deployment/services.go.
func init() {
	register(&Analyzer{
		Name:        "deployment.MultiServiceAnalyzer",
		Workloads:   true,
		Aliases:     []string{"deployment.ServiceAssociationAnalyzer"},
		Description: "Checks association between services and pods",
		Codes:       []string{"IST0116", "IST0137"},
		run: func(c *Context) {
			for _, d := range c.Objects(KindDeployment) {
				// Waypoints (gateway.istio.io/managed=istio.io-mesh-controller) are not checked.
				if d.Labels["gateway.istio.io/managed"] != "istio.io-mesh-controller" && deploymentInMesh(c, d) {
					deploymentServices(c, d)
				}
			}
		},
	})
}

type namedService struct {
	name string
	spec *corev1.ServiceSpec
}

// deploymentServices reports a port the Deployment's Services give
// different protocols, and a targetPort they reach from different ports.
func deploymentServices(c *Context, d *Object) {
	podLabels := d.Spec.(*appsv1.DeploymentSpec).Template.Labels
	var svcs []namedService
	for _, s := range c.Objects(config.KindService) {
		spec := s.Spec.(*corev1.ServiceSpec)
		if len(spec.Selector) > 0 && s.Namespace == d.Namespace && selects(spec.Selector, podLabels) {
			svcs = append(svcs, namedService{s.FullName(), spec})
		}
	}
	protocols := map[int32]map[corev1.Protocol][]string{}
	targets := map[string]map[int32]string{}
	for _, s := range svcs {
		for _, p := range s.spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if protocols[p.Port] == nil {
				protocols[p.Port] = map[corev1.Protocol][]string{}
			}
			protocols[p.Port][proto] = append(protocols[p.Port][proto], s.name)
			tp := p.TargetPort.String()
			if tp == "0" || tp == "" {
				tp = strconv.Itoa(int(p.Port))
			}
			if targets[tp] == nil {
				targets[tp] = map[int32]string{}
			}
			targets[tp][p.Port] = s.name
		}
	}
	for port, byProto := range protocols {
		if len(byProto) > 1 {
			var names []string
			for _, n := range byProto {
				names = append(names, n...)
			}
			sort.Strings(names)
			c.report(DeploymentAssociatedToMultipleServices, d, pathMetadataName, d.Name, port, names)
		}
	}
	for tp, byPort := range targets {
		if len(byPort) > 1 {
			var names []string
			var ports []int32
			for p, n := range byPort {
				names = append(names, n)
				ports = append(ports, p)
			}
			sort.Strings(names)
			sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
			c.report(DeploymentConflictingPorts, d, pathMetadataName, d.Name, names, tp, ports)
		}
	}
}
