package gatewayapi_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// base is a GatewayClass of sluice's, two namespaces (one labelled) and
// three Services the cases route to.
const base = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec: {controllerName: istio.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {expose: "true"}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {selector: {app: web}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: apps}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {selector: {app: db}, ports: [{name: http, port: 8080}]}
---
`

func convert(t *testing.T, yaml string) *gatewayapi.Output {
	t.Helper()
	dec := config.Decode([]byte(base+yaml), config.DecodeOptions{File: "test.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	return gatewayapi.Convert(dec.Resources, gatewayapi.Options{Registry: registry.Build(dec.Resources, registry.BuildOptions{})})
}

// statusLines flattens status into "who: Type=Status Reason" lines.
func statusLines(s *gatewayapi.Status) []string {
	var out []string
	add := func(who string, cs []gatewayapi.Condition) {
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s: %s=%s %s", who, c.Type, c.Status, c.Reason))
		}
	}
	for _, c := range s.GatewayClasses {
		add("GatewayClass "+c.Name, c.Conditions)
	}
	for _, g := range s.Gateways {
		add("Gateway "+g.Namespace+"/"+g.Name, g.Conditions)
		for _, l := range g.Listeners {
			add(fmt.Sprintf("Gateway %s/%s listener %s", g.Namespace, g.Name, l.Name), l.Conditions)
			out = append(out, fmt.Sprintf("Gateway %s/%s listener %s: attachedRoutes=%d", g.Namespace, g.Name, l.Name, l.AttachedRoutes))
		}
	}
	for _, r := range s.Routes {
		for _, p := range r.Parents {
			add(fmt.Sprintf("%s %s/%s parent %s", r.Kind, r.Namespace, r.Name, p.ParentRef), p.Conditions)
		}
	}
	return out
}

// vsLines flattens VirtualServices into "gateways hosts: route(match) ..."
// lines, routes in order.
func vsLines(out *gatewayapi.Output) []string {
	var lines []string
	for _, v := range out.VirtualServices {
		vs := v.Spec.(*networking.VirtualService)
		var routes []string
		for _, hr := range vs.Http {
			routes = append(routes, hr.Name+"("+describeMatch(hr.Match)+")"+describeAction(hr, v.Semantics))
		}
		lines = append(lines, fmt.Sprintf("%s %s: %s", strings.Join(vs.Gateways, ","), strings.Join(vs.Hosts, ","), strings.Join(routes, " ")))
	}
	sort.Strings(lines)
	return lines
}

func describeMatch(ms []*networking.HTTPMatchRequest) string {
	var parts []string
	for _, m := range ms {
		switch u := m.Uri.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			parts = append(parts, "="+u.Exact)
		case *networking.StringMatch_Prefix:
			parts = append(parts, u.Prefix+"*")
		case *networking.StringMatch_Regex:
			parts = append(parts, "~"+u.Regex)
		}
		if m.Port != 0 {
			parts = append(parts, fmt.Sprintf("port=%d", m.Port))
		}
	}
	return strings.Join(parts, " ")
}

func describeAction(hr *networking.HTTPRoute, sem *gatewayapi.RouteSemantics) string {
	ex := sem.Extra(hr)
	switch {
	case hr.DirectResponse != nil:
		return fmt.Sprintf("->%d", hr.DirectResponse.Status)
	case hr.Redirect != nil:
		s := fmt.Sprintf("->redirect %d", hr.Redirect.RedirectCode)
		if hr.Redirect.Uri != "" {
			s += " uri=" + hr.Redirect.Uri
		}
		if ex != nil && ex.RedirectPrefix != nil {
			s += " prefix=" + *ex.RedirectPrefix
		}
		if p := hr.Redirect.GetPort(); p != 0 {
			s += fmt.Sprintf(" port=%d", p)
		}
		return s
	}
	var dests []string
	for _, d := range hr.Route {
		dests = append(dests, fmt.Sprintf("%s:%d/%d", strings.Split(d.Destination.Host, ".")[0], d.Destination.Port.GetNumber(), d.Weight))
	}
	s := "->" + strings.Join(dests, "+")
	if ex != nil && ex.InvalidWeight > 0 {
		s += fmt.Sprintf("+500/%d", ex.InvalidWeight)
	}
	if rw := hr.Rewrite; rw != nil && rw.Uri != "" {
		s += " rewrite=" + rw.Uri
	}
	return s
}

func TestConvert(t *testing.T) {
	gateway := func(class, listeners string) string {
		return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: ` + class + `
  listeners:
` + listeners + "---\n"
	}
	httpAll := `  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
`
	cases := []struct {
		name string
		yaml string
		// status lines that must be present, and VirtualService lines
		// that must be present (nil: not checked).
		status []string
		vs     []string
		// gateways are the generated Istio Gateways' "ns/name servers".
		gateways []string
	}{
		{
			name: "one listener, one route: Istio Gateway per listener, VirtualService per hostname",
			yaml: gateway("sluice", httpAll) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
`,
			gateways: []string{"infra/gw-istio-autogenerated-k8s-gateway-http 80/HTTP */*"},
			status: []string{
				"GatewayClass sluice: Accepted=True Accepted",
				"Gateway infra/gw: Accepted=True Accepted",
				"Gateway infra/gw: Programmed=True Programmed",
				"Gateway infra/gw listener http: Programmed=True Programmed",
				"Gateway infra/gw listener http: attachedRoutes=1",
				"HTTPRoute apps/r parent Gateway infra/gw: Accepted=True Accepted",
				"HTTPRoute apps/r parent Gateway infra/gw: ResolvedRefs=True ResolvedRefs",
			},
			vs: []string{"infra/gw-istio-autogenerated-k8s-gateway-http *: apps.r.0(/*)->web:8080/1"},
		},
		{
			name: "Istio's controller name is an alias; other controllers' Gateways are left alone",
			yaml: gateway("istio", httpAll) + `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: infra}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
`,
			gateways: []string{"infra/gw-istio-autogenerated-k8s-gateway-http 80/HTTP */*"},
			status:   []string{"GatewayClass istio: Accepted=True Accepted", "Gateway infra/gw: Programmed=True Programmed"},
		},
		{
			name: "allowedRoutes: Same refuses other namespaces, Selector matches namespace labels",
			yaml: gateway("sluice", `  - {name: same, port: 80, protocol: HTTP}
  - {name: sel, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {expose: "true"}}}}}
`) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: same}, {name: gw, namespace: infra, sectionName: sel}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: data}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: sel}]
  rules: [{backendRefs: [{name: db, port: 8080}]}]
`,
			status: []string{
				"HTTPRoute apps/r parent Gateway infra/gw section same: Accepted=False NotAllowedByListeners",
				"HTTPRoute apps/r parent Gateway infra/gw section sel: Accepted=True Accepted",
				"HTTPRoute data/r parent Gateway infra/gw section sel: Accepted=False NotAllowedByListeners",
				"Gateway infra/gw listener same: attachedRoutes=0",
				"Gateway infra/gw listener sel: attachedRoutes=1",
			},
			vs: []string{"infra/gw-istio-autogenerated-k8s-gateway-sel *: apps.r.0(/*)->web:8080/1"},
		},
		{
			name: "hostnames intersect with the listener's; none in common is NoMatchingListenerHostname",
			yaml: gateway("sluice", `  - {name: wild, port: 80, protocol: HTTP, hostname: "*.example.com", allowedRoutes: {namespaces: {from: All}}}
`) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [foo.example.com, example.com, "*.bar.example.com", other.org]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [other.org]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
`,
			status: []string{
				"HTTPRoute apps/a parent Gateway infra/gw: Accepted=True Accepted",
				"HTTPRoute apps/b parent Gateway infra/gw: Accepted=False NoMatchingListenerHostname",
			},
			vs: []string{
				"infra/gw-istio-autogenerated-k8s-gateway-wild *.bar.example.com: apps.a.0(/*)->web:8080/1",
				"infra/gw-istio-autogenerated-k8s-gateway-wild foo.example.com: apps.a.0(/*)->web:8080/1",
			},
		},
		{
			name: "rules of every route on a hostname merge in precedence order: host, exact, longest prefix, method, headers",
			yaml: gateway("sluice", httpAll) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api/}}, {path: {type: Exact, value: /a}}]
    backendRefs: [{name: api, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [foo.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x, value: "1"}]}, {path: {type: PathPrefix, value: /api}, method: GET}]
    backendRefs: [{name: web, port: 8080}]
`,
			vs: []string{
				"infra/gw-istio-autogenerated-k8s-gateway-http *: apps.a.1(=/a)->api:8080/1 apps.a.1(/api*)->api:8080/1 apps.a.0(/*)->web:8080/1",
				"infra/gw-istio-autogenerated-k8s-gateway-http foo.example.com: apps.b.0(/api*)->web:8080/1 apps.b.0(/api*)->web:8080/1 " +
					"apps.a.1(=/a)->api:8080/1 apps.a.1(/api*)->api:8080/1 apps.a.0(/*)->web:8080/1",
			},
		},
		{
			name: "unusable backends: not found and not permitted answer their share with 500; a grant permits",
			yaml: gateway("sluice", httpAll) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {value: /mixed}}]
    backendRefs: [{name: web, port: 8080, weight: 3}, {name: nope, port: 8080, weight: 1}]
  - matches: [{path: {value: /cross}}]
    backendRefs: [{name: db, namespace: data, port: 8080}]
  - matches: [{path: {value: /zero}}]
    backendRefs: [{name: web, port: 8080, weight: 0}]
  - matches: [{path: {value: /kind}}]
    backendRefs: [{group: example.com, kind: Thing, name: web, port: 8080}]
  - matches: [{path: {value: /none}}]
`,
			status: []string{"HTTPRoute apps/r parent Gateway infra/gw: ResolvedRefs=False BackendNotFound"},
			// Equal prefix lengths keep rule order.
			vs: []string{"infra/gw-istio-autogenerated-k8s-gateway-http *: apps.r.0(/mixed*)->web:8080/3+500/1 " +
				"apps.r.1(/cross*)->500 apps.r.2(/zero*)->500 apps.r.3(/kind*)->500 apps.r.4(/none*)->500"},
		},
		{
			name: "a ReferenceGrant lets a route reach a Service in another namespace",
			yaml: gateway("sluice", httpAll) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: db, namespace: data, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: data}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: "", kind: Service, name: db}]
`,
			status: []string{"HTTPRoute apps/r parent Gateway infra/gw: ResolvedRefs=True ResolvedRefs"},
			vs:     []string{"infra/gw-istio-autogenerated-k8s-gateway-http *: apps.r.0(/*)->db:8080/1"},
		},
		{
			name: "kinds: InvalidKind backend, InvalidRouteKinds listener, unsupported protocol",
			yaml: gateway("sluice", `  - {name: tcp, port: 9000, protocol: TCP, allowedRoutes: {kinds: [{kind: HTTPRoute}]}}
  - {name: udp, port: 53, protocol: UDP}
  - {name: http, port: 80, protocol: HTTP}
`) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: http}, {name: gw, sectionName: nosuch}]
  rules: [{backendRefs: [{group: example.com, kind: Thing, name: x, port: 1}]}]
`,
			status: []string{
				"Gateway infra/gw listener tcp: ResolvedRefs=False InvalidRouteKinds",
				"Gateway infra/gw listener udp: Accepted=False UnsupportedProtocol",
				"Gateway infra/gw: Accepted=True ListenersNotValid",
				"HTTPRoute infra/r parent Gateway infra/gw section http: ResolvedRefs=False InvalidKind",
				"HTTPRoute infra/r parent Gateway infra/gw section nosuch: Accepted=False NoMatchingParent",
			},
		},
		{
			name: "HTTPS: a certificate from a missing Secret, or one in another namespace without a grant, is not programmed",
			yaml: gateway("sluice", `  - {name: missing, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: nope}]}}
  - {name: cross, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: cert, namespace: data}]}}
  - {name: http, port: 443, protocol: HTTP}
`),
			status: []string{
				"Gateway infra/gw listener missing: ResolvedRefs=False InvalidCertificateRef",
				"Gateway infra/gw listener cross: ResolvedRefs=False RefNotPermitted",
				"Gateway infra/gw listener http: Conflicted=True ProtocolConflict",
				"Gateway infra/gw: Programmed=False Invalid",
			},
			gateways: []string{},
		},
		{
			name: "filters: redirect and rewrite replace the matched prefix; / splits the match; ports come from the listener",
			yaml: gateway("sluice", httpAll) + `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new/}}}]
  - matches: [{path: {value: /strip}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {value: /full}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /x}, statusCode: 301}}]
`,
			vs: []string{"infra/gw-istio-autogenerated-k8s-gateway-http *: apps.r.1(=/strip)->web:8080/1 rewrite=/ " +
				"apps.r.1(/strip/*)->web:8080/1 rewrite=/ apps.r.2(/full*)->redirect 301 uri=/x port=80 " +
				"apps.r.0(/old*)->redirect 302 prefix=/new port=80"},
		},
		{
			name: "GRPCRoute methods become gRPC paths; TCPRoute and TLSRoute bind to their listeners",
			yaml: gateway("sluice", `  - {name: http, port: 80, protocol: HTTP}
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: tls, port: 8443, protocol: TLS, tls: {mode: Passthrough}}
`) + `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{method: {service: echo.Echo, method: Ping}}, {method: {service: echo.Admin}}, {method: {method: Health}}]
    backendRefs: [{name: web, namespace: apps, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: infra}, {group: gateway.networking.k8s.io, kind: TCPRoute, namespace: infra}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: tcp}, {name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: s, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 8080}]}]
`,
			status: []string{
				"GRPCRoute infra/g parent Gateway infra/gw section http: ResolvedRefs=True ResolvedRefs",
				"TCPRoute infra/t parent Gateway infra/gw section tcp: Accepted=True Accepted",
				"TCPRoute infra/t parent Gateway infra/gw section http: Accepted=False NotAllowedByListeners",
				"TLSRoute infra/s parent Gateway infra/gw section tls: Accepted=True Accepted",
				"TLSRoute infra/s parent Gateway infra/gw section tls: ResolvedRefs=False RefNotPermitted",
			},
			vs: []string{"infra/gw-istio-autogenerated-k8s-gateway-http *: infra.g.0(=/echo.Echo/Ping)->web:8080/1 " +
				"infra.g.0(~/[^/]+/Health)->web:8080/1 infra.g.0(/echo.Admin*)->web:8080/1"},
		},
		{
			name: "mesh: a Service parent makes a mesh VirtualService; a consumer route is its namespace's own",
			yaml: `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: apps}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 8080}]
  rules: [{backendRefs: [{name: api, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: data}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: apps}, {group: "", kind: Service, name: nope}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 8080}]}]
`,
			status: []string{
				"HTTPRoute apps/producer parent Service apps/web port 8080: Accepted=True Accepted",
				"HTTPRoute data/consumer parent Service apps/web: Accepted=True Accepted",
				"HTTPRoute data/consumer parent Service apps/web: ResolvedRefs=True ResolvedRefs",
				"HTTPRoute data/consumer parent Service data/nope: Accepted=False NoMatchingParent",
			},
			vs: []string{
				"mesh web.apps.svc.cluster.local: apps.producer.0(/* port=8080)->api:8080/1",
				"mesh web.apps.svc.cluster.local: data.consumer.0(/*)->web:8080/1",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := convert(t, tc.yaml)
			got := statusLines(out.Status)
			for _, w := range tc.status {
				if !contains(got, w) {
					t.Errorf("status lacks %q; have:\n  %s", w, strings.Join(got, "\n  "))
				}
			}
			if tc.vs != nil {
				have := vsLines(out)
				for _, w := range tc.vs {
					if !contains(have, w) {
						t.Errorf("VirtualServices lack\n  %s\nhave:\n  %s", w, strings.Join(have, "\n  "))
					}
				}
			}
			if tc.gateways != nil {
				var have []string
				for _, g := range out.Gateways {
					s := g.Spec.(*networking.Gateway).Servers[0]
					have = append(have, fmt.Sprintf("%s/%s %d/%s %s", g.Namespace, g.Name, s.Port.Number, s.Port.Protocol, strings.Join(s.Hosts, ",")))
					if g.Annotations[gatewayapi.AnnotationNamespaceScoped] != "true" {
						t.Errorf("%s/%s is not namespace-scoped", g.Namespace, g.Name)
					}
				}
				if strings.Join(have, "\n") != strings.Join(tc.gateways, "\n") {
					t.Errorf("Istio Gateways:\n  %s\nwant:\n  %s", strings.Join(have, "\n  "), strings.Join(tc.gateways, "\n  "))
				}
			}
		})
	}
}

// TestL4Routes checks the tcp and tls routes TCPRoute and TLSRoute become.
func TestL4Routes(t *testing.T) {
	out := convert(t, `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: tls, port: 8443, protocol: TLS, hostname: "*.example.com", tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 8080, weight: 3}, {name: api, port: 8080, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: s, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com, b.other.org]
  rules: [{backendRefs: [{name: nope, port: 443}]}]
`)
	var tcp, tlsVS *networking.VirtualService
	for _, v := range out.VirtualServices {
		vs := v.Spec.(*networking.VirtualService)
		switch {
		case len(vs.Tcp) > 0:
			tcp = vs
		case len(vs.Tls) > 0:
			tlsVS = vs
		}
	}
	if tcp == nil || tlsVS == nil {
		t.Fatalf("want a tcp and a tls VirtualService, got %v", vsLines(out))
	}
	if g := strings.Join(tcp.Gateways, ","); g != "apps/gw-istio-autogenerated-k8s-gateway-tcp" {
		t.Errorf("TCPRoute bound to %s, want only the TCP listener (the TLS passthrough listener takes TLSRoutes)", g)
	}
	if r := tcp.Tcp[0].Route; len(r) != 2 || r[0].Weight != 3 || r[1].Weight != 1 || !strings.HasPrefix(r[1].Destination.Host, "api.") {
		t.Errorf("tcp route destinations: %v", r)
	}
	m := tlsVS.Tls[0].Match[0]
	if strings.Join(m.SniHosts, ",") != "a.example.com" || strings.Join(tlsVS.Gateways, ",") != "apps/gw-istio-autogenerated-k8s-gateway-tls" {
		t.Errorf("tls route: SNI %v on %v, want a.example.com (b.other.org is outside the listener) on the TLS listener", m.SniHosts, tlsVS.Gateways)
	}
	if d := tlsVS.Tls[0].Route[0].Destination.Host; d != "blackhole.gateway-api.invalid" {
		t.Errorf("a TLSRoute without usable backends must refuse connections, got destination %s", d)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestConsumerRouteExport checks the visibility rules of mesh routes: the
// producer's VirtualService is exported everywhere, a consumer's only to
// its own namespace, and consumer VirtualServices come first so that they
// win there.
func TestConsumerRouteExport(t *testing.T) {
	out := convert(t, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: apps}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: data}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: apps}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 8080}]}]
`)
	if len(out.VirtualServices) != 2 {
		t.Fatalf("want 2 VirtualServices, got %d", len(out.VirtualServices))
	}
	first, second := out.VirtualServices[0], out.VirtualServices[1]
	if first.Namespace != "data" || strings.Join(first.Spec.(*networking.VirtualService).ExportTo, ",") != "." {
		t.Errorf("first VirtualService: %s/%s exportTo %v, want the consumer's in data exported to .", first.Namespace, first.Name,
			first.Spec.(*networking.VirtualService).ExportTo)
	}
	if second.Namespace != "apps" || strings.Join(second.Spec.(*networking.VirtualService).ExportTo, ",") != "*" {
		t.Errorf("second VirtualService: %s/%s exportTo %v, want the producer's in apps exported to *", second.Namespace, second.Name,
			second.Spec.(*networking.VirtualService).ExportTo)
	}
}
