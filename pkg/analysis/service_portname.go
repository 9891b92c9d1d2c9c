package analysis

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/service/portname.go.
func init() {
	register(&Analyzer{
		Name:        "service.PortNameAnalyzer",
		Description: "Checks the port names associated with each service",
		Codes:       []string{"IST0118", "IST0150"},
		run: func(c *Context) {
			for _, o := range c.Objects(config.KindService) {
				if !isIstioControlPlane(o) {
					servicePortNames(c, o)
				}
			}
		},
	})
}

// isIstioControlPlane is util.IsIstioControlPlane: an "istio" label, or
// release=istio.
func isIstioControlPlane(o *Object) bool {
	_, ok := o.Labels["istio"]
	return ok || o.Labels["release"] == "istio"
}

func servicePortNames(c *Context, o *Object) {
	svc := o.Spec.(*corev1.ServiceSpec)
	// Istio's condition, operator precedence included: a managed gateway's
	// Service, or any Service labelled with the mesh or east-west
	// controller value.
	v, ok := o.Labels["gateway.istio.io/managed"]
	if ok && v == "istio.io-gateway-controller" || v == "istio.io-mesh-controller" || v == "istio.io-eastwest-controller" {
		return
	}
	for i, p := range svc.Ports {
		if !unsupportedPortProtocol(p) && !(p.Name == "tcp" && svc.Type == corev1.ServiceTypeExternalName) {
			continue
		}
		path := sprintf(pathPortInPorts, i)
		if svc.Type == corev1.ServiceTypeExternalName {
			c.report(ExternalNameServiceTypeInvalidPortName, o, path)
			continue
		}
		c.report(PortNameIsNotUnderNamingConvention, o, path, p.Name, int(p.Port), p.TargetPort.String())
	}
}

// unsupportedPortProtocol reports whether Istio can tell no protocol from
// the port's protocol, appProtocol or name (pkg/config/kube
// ConvertProtocol returning protocol.Unsupported).
func unsupportedPortProtocol(p corev1.ServicePort) bool {
	if p.Protocol == corev1.ProtocolUDP {
		return false
	}
	name := p.Name
	if p.AppProtocol != nil {
		name = *p.AppProtocol
		switch name {
		case "kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss":
			return false
		}
	}
	if len(name) >= len("grpc-web") && strings.EqualFold(name[:len("grpc-web")], "grpc-web") {
		return false
	}
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	switch strings.ToLower(name) {
	case "tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls", "mongo", "redis", "mysql":
		return false
	}
	// Well-known ports default to TCP: SMTP, DNS, MySQL, MongoDB.
	switch p.Port {
	case 25, 53, 3306, 27017:
		return false
	}
	return true
}
