package gatewayapi_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// TestCORSFilter: the HTTPRoute CORS filter becomes the rule's
// VirtualService corsPolicy: origins with '*' as regexes (greedy, any
// labels), the lists as given, maxAge with the CRD's default of 5s,
// allowCredentials when set, and preflights from origins not allowed
// answered by the gateway (IGNORE), as the Gateway API requires.
func TestCORSFilter(t *testing.T) {
	out := convert(t, `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1]
        exposeHeaders: [x-header-3]
        allowCredentials: true
        maxAge: 3600
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /any}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["*"]
        allowCredentials: false
    backendRefs: [{name: web, port: 8080}]
`)
	want := map[string]string{
		"/full": `{"allowOrigins":[{"exact":"https://www.foo.com"},{"regex":"https://.*\\.bar\\.com"}],` +
			`"allowMethods":["GET","OPTIONS"],"allowHeaders":["x-header-1"],"exposeHeaders":["x-header-3"],` +
			`"maxAge":"3600s","allowCredentials":true,"unmatchedPreflights":"IGNORE"}`,
		"/any": `{"allowOrigins":[{"regex":".*"}],"maxAge":"5s","allowCredentials":false,"unmatchedPreflights":"IGNORE"}`,
	}
	got := map[string]*networking.CorsPolicy{}
	for _, v := range out.VirtualServices {
		for _, hr := range v.Spec.(*networking.VirtualService).Http {
			if len(hr.Match) > 0 && hr.CorsPolicy != nil {
				got[hr.Match[0].Uri.GetPrefix()] = hr.CorsPolicy
			}
		}
	}
	for path, w := range want {
		var wp networking.CorsPolicy
		if err := protojson.Unmarshal([]byte(w), &wp); err != nil {
			t.Fatal(err)
		}
		if g := got[path]; !proto.Equal(g, &wp) {
			t.Errorf("%s: corsPolicy\n got %v\nwant %v", path, g, &wp)
		}
	}
}
