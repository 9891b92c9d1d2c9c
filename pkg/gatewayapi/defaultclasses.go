package gatewayapi

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// MeshControllerName is the controller of Istio's waypoint class.
const MeshControllerName = "istio.io/mesh-controller"

// defaultClasses are the GatewayClasses istiod creates at start-up
// (istio/istio pilot/pkg/config/kube/gateway/gatewayclass.go,
// builtinClasses): `istio` for gateways and `istio-waypoint` for ambient
// waypoints. A GatewayClass of the same name in the config folder
// overrides the default, as an edited object would in a cluster.
var defaultClasses = map[string]string{
	"istio":          IstioControllerName,
	"istio-waypoint": MeshControllerName,
}

// class is the GatewayClass a Gateway names: the folder's, else Istio's
// built-in one of that name (listed in status once a Gateway uses it).
func (c *converter) class(name string) (*GatewayClassStatus, bool) {
	if st, ok := c.classes[name]; ok {
		return st, true
	}
	ctrl, ok := defaultClasses[name]
	if !ok {
		return nil, false
	}
	c.gatewayClass(&config.Resource{Meta: config.Meta{Name: name}}, &gwv1.GatewayClassSpec{ControllerName: gwv1.GatewayController(ctrl)})
	return c.classes[name], true
}
