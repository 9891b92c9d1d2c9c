package router

import (
	"fmt"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
)

// compileCors compiles the route's CORS policy (the cors filter's per-route
// config) from its and its virtual host's typed_per_filter_config, or the
// deprecated cors fields of the route action and the virtual host.
func compileCors(cr *Route, r *route.Route, vh *route.VirtualHost) error {
	var legacy []cors.PolicyConfig
	if c := r.GetRoute().GetCors(); c != nil { //nolint:staticcheck // deprecated, still honoured by Envoy
		legacy = append(legacy, c)
	}
	if c := vh.GetCors(); c != nil { //nolint:staticcheck
		legacy = append(legacy, c)
	}
	p, err := cors.CompilePerRoute([]*anypb.Any{r.TypedPerFilterConfig[cors.Name], vh.TypedPerFilterConfig[cors.Name]}, legacy)
	if err != nil {
		return fmt.Errorf("cors: %w", err)
	}
	cr.Cors = p
	return nil
}
