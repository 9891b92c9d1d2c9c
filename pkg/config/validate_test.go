package config

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// decodeOne decodes a single-resource YAML document for a test.
func decodeOne(t *testing.T, doc string) *Resource {
	t.Helper()
	res := Decode([]byte(doc), DecodeOptions{File: "test.yaml"})
	if len(res.Errors) > 0 {
		t.Fatalf("decode: %v", res.Errors)
	}
	if len(res.Resources) != 1 {
		t.Fatalf("decoded %d resources, want 1 (skipped %v)", len(res.Resources), res.Skipped)
	}
	return res.Resources[0]
}

func TestValidateAcceptsValidResources(t *testing.T) {
	cases := map[string]string{
		"VirtualService weighted subsets": `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers:
        end-user: {exact: jason}
        x-present: {}
      uri: {prefix: /}
      queryParams:
        debug: {regex: "^(1|true)$"}
      ignoreUriCase: true
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 75
      headers:
        request:
          set: {x-version: v1}
        response:
          add: {x-served-by: "reviews 100%%"}
          remove: [x-internal]
    - destination: {host: reviews.bookinfo.svc.cluster.local, subset: v3}
      weight: 25
    timeout: 10s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure,503"}
    fault:
      delay: {percentage: {value: 0.1}, fixedDelay: 5s}
      abort: {percentage: {value: 10}, httpStatus: 503}
    mirror: {host: reviews-shadow}
    mirrorPercentage: {value: 50}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*\\.example\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, "*"]
      maxAge: 86400s
`,
		"VirtualService with gateway, wildcard host, redirect and direct response": `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*"]
  gateways: [istio-system/public-gateway, mesh-gw.istio-system.svc.cluster.local]
  http:
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{uri: {prefix: /health}}]
    directResponse: {status: 200, body: {string: ok}}
  - match: [{uri: {prefix: /api}, headers: {"@request.auth.claims.group": {exact: admin}}}]
    rewrite: {uriRegexRewrite: {match: "^/api/(.*)", rewrite: "/\\1"}}
    route: [{destination: {host: api.default.svc.cluster.local}}]
  - route: [{destination: {host: web.default.svc.cluster.local}}]
`,
		"VirtualService with IP host and mesh gateway": `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ip}
spec:
  hosts: [10.0.0.1, ratings]
  gateways: [mesh]
  http:
  - route: [{destination: {host: ratings}}]
`,
		"delegate root and delegate": `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root}
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-gateway]
  http:
  - match: [{uri: {prefix: /productpage}}]
    delegate: {name: productpage, namespace: nsA}
`,
		"delegate VirtualService without hosts": `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: nsa}
spec:
  http:
  - match: [{uri: {prefix: /productpage/v1/}}]
    route: [{destination: {host: productpage-v1.nsa.svc.cluster.local}}]
`,
		"VirtualService tls and tcp": `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls}
spec:
  hosts: ["*.example.com", db.internal]
  gateways: [egress]
  tls:
  - match: [{port: 443, sniHosts: [login.example.com]}]
    route: [{destination: {host: login.example.com, port: {number: 443}}}]
  tcp:
  - match: [{port: 27017, destinationSubnets: [10.0.0.0/8]}]
    route:
    - destination: {host: db.internal, port: {number: 5555}}
      weight: 100
`,
		"DestinationRule": `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.default.svc.cluster.local
  exportTo: [".", istio-system]
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s}
      localityLbSetting:
        enabled: true
        distribute:
        - from: us-west/zone1/*
          to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 0.030s, idleTimeout: 0s, tcpKeepalive: {time: 7200s, interval: 75s}}
      http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10, idleTimeout: 3600s}
    outlierDetection: {consecutive5xxErrors: 7, interval: 300s, baseEjectionTime: 900s, maxEjectionPercent: 100}
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {simple: LEAST_REQUEST}
    - port: {number: 9080}
      loadBalancer:
        consistentHash: {maglev: {tableSize: 65537}, httpHeaderName: x-user}
  subsets:
  - name: v1
    labels: {version: v1, app.kubernetes.io/name: reviews}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
      tls: {mode: MUTUAL, credentialName: client-credential}
`,
		"DestinationRule with failover and workload selector": `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: failover}
spec:
  host: "*.example.com"
  workloadSelector: {matchLabels: {app: frontend}}
  exportTo: ["."]
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer:
      localityLbSetting:
        failover: [{from: us-east, to: eu-west}]
    retryBudget: {percent: 25, minRetryConcurrency: 3}
`,
		"Gateway": `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo/bookinfo.example.com, "./*.example.org"]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert}
  - port: {number: 8443, name: https-files, protocol: HTTPS}
    hosts: [files.example.com]
    tls: {mode: MUTUAL, serverCertificate: /etc/certs/server.pem, privateKey: /etc/certs/key.pem, caCertificates: /etc/certs/ca.pem}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
`,
		"ServiceEntry DNS": `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-svc-https}
spec:
  hosts: [api.dropboxapi.com, www.googleapis.com]
  location: MESH_EXTERNAL
  ports:
  - {number: 443, name: https, protocol: TLS}
  resolution: DNS
`,
		"ServiceEntry wildcard NONE with CIDR": `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wildcard}
spec:
  hosts: ["*.bar.com"]
  addresses: [192.192.192.0/24]
  ports:
  - {number: 27018, name: mongodb, protocol: MONGO}
  resolution: NONE
  exportTo: ["~"]
`,
		"ServiceEntry STATIC": `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [mymongodb.somedomain]
  addresses: [192.192.192.192/24]
  ports:
  - {number: 27018, name: mongodb, protocol: MONGO}
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 2.2.2.2
  - address: 3.3.3.3
    ports: {mongodb: 27019}
    labels: {version: v1}
  - network: remote
`,
		"ServiceEntry unix socket": `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: uds}
spec:
  hosts: [uds.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: "unix:///var/run/example/socket"}]
`,
		"ServiceEntry DNS with endpoints and wildcard-free": `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns-endpoints}
spec:
  hosts: [foo.bar.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: DNS_ROUND_ROBIN
  endpoints: [{address: us.foo.bar.com, ports: {http: 8080}}]
`,
		"ServiceEntry workloadSelector": `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm}
spec:
  hosts: [details.bookinfo.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: details-legacy}}
`,
		"WorkloadEntry": `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-svc}
spec:
  serviceAccount: details-legacy
  address: 2.2.2.2
  ports: {http: 8080}
  labels: {app: details-legacy, instance-id: vm1}
  weight: 5
`,
		"WorkloadEntry with network only": `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: remote}
spec:
  network: network2
`,
		"WorkloadEntry with hostname": `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-dns}
spec:
  address: vm1.example.com
`,
		"Sidecar": `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: prod-us1}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: somename}
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - port: {number: 9080, protocol: HTTP, name: egresshttp}
    hosts: [prod-us1/*]
  - hosts: ["./*", istio-system/*, "~/*", "*/example.com"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`,
		"Service": `
apiVersion: v1
kind: Service
metadata: {name: reviews, labels: {app: reviews}}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: grpc-web, port: 9090, targetPort: grpc}
  - {name: dns, port: 9080, protocol: UDP}
`,
		"headless Service without ports": `
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: db}
`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if errs := Validate(decodeOne(t, doc)); len(errs) != 0 {
				t.Errorf("unexpected errors:\n%v", errs)
			}
		})
	}
}

func TestValidateRejectsInvalidResources(t *testing.T) {
	const vsHead = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n"
	const drHead = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec:\n"
	const seHead = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se}\nspec:\n"
	const gwHead = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n"
	const weHead = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: we}\nspec:\n"
	const scHead = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\nspec:\n"
	const svcHead = "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec:\n"
	const route = "  http: [{route: [{destination: {host: r}}]}]\n"

	cases := []struct {
		name, doc, field, msg string
	}{
		// Metadata.
		{"invalid name", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: Bad_Name}\nspec:\n  hosts: [r]\n" + route,
			"metadata.name", "not a valid name"},
		{"gateway name with dot", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: a.b}\nspec:\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]\n",
			"metadata.name", "DNS label"},
		{"invalid label", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs, labels: {app: 'bad value'}}\nspec:\n  hosts: [r]\n" + route,
			`metadata.labels["app"]`, "invalid label value"},
		{"dry-run annotation", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs, annotations: {istio.io/dry-run: 'true'}}\nspec:\n  hosts: [r]\n" + route,
			"metadata.annotations", "AuthorizationPolicy"},

		// VirtualService.
		{"vs invalid host", vsHead + "  hosts: [r, 'bad host']\n" + route, "spec.hosts[1]", "invalid"},
		{"vs wildcard host for mesh", vsHead + "  hosts: ['*']\n" + route, "spec.hosts[0]", "not allowed"},
		{"vs partial wildcard", vsHead + "  hosts: ['foo*.com']\n" + route, "spec.hosts[0]", "wildcard"},
		{"vs duplicate hosts", vsHead + "  hosts: ['*.example.com', a.example.com]\n" + route, "spec.hosts[1]", "duplicate"},
		{"vs delegate with gateways", vsHead + "  gateways: [gw]\n" + route, "spec.gateways", "delegate"},
		{"vs delegate with tcp", vsHead + "  tcp: [{route: [{destination: {host: r}}]}]\n", "spec.tcp", "delegate"},
		{"vs delegate delegating", vsHead + "  http: [{delegate: {name: other}}]\n", "spec.http[0].delegate", "cannot delegate"},
		{"vs bad gateway name", vsHead + "  hosts: [r]\n  gateways: [ns/Bad_Gw]\n" + route, "spec.gateways[0]", "invalid gateway name"},
		{"vs no routes", vsHead + "  hosts: [r]\n", "spec", "at least one"},
		{"http route without action", vsHead + "  hosts: [r]\n  http: [{match: [{uri: {prefix: /}}]}]\n", "spec.http[0]", "route, redirect, directResponse"},
		{"route and redirect", vsHead + "  hosts: [r]\n  http: [{redirect: {uri: /x}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].redirect", "both route destinations and a redirect"},
		{"rewrite and redirect", vsHead + "  hosts: [r]\n  http: [{redirect: {uri: /x}, rewrite: {uri: /y}}]\n",
			"spec.http[0].redirect", "rewrite"},
		{"directResponse and route", vsHead + "  hosts: [r]\n  http: [{directResponse: {status: 200}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].directResponse", "route destinations"},
		{"directResponse and redirect", vsHead + "  hosts: [r]\n  http: [{directResponse: {status: 200}, redirect: {uri: /a}}]\n",
			"spec.http[0].redirect", "directResponse"},
		{"root route with route", vsHead + "  hosts: [r]\n  http: [{delegate: {name: d}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].route", "delegate"},
		{"delegate without name", vsHead + "  hosts: [r]\n  http: [{delegate: {namespace: x}}]\n", "spec.http[0].delegate.name", "required"},
		{"destination without host", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {subset: v1}}, {destination: {host: r}}]}]\n",
			"spec.http[0].route[0].destination.host", "required"},
		{"route without destination", vsHead + "  hosts: [r]\n  http: [{route: [{weight: 10}]}]\n",
			"spec.http[0].route[0].destination", "required"},
		{"destination host *", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {host: '*'}}]}]\n",
			"spec.http[0].route[0].destination.host", "not a valid destination host"},
		{"bad subset name", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {host: r, subset: V_1}}]}]\n",
			"spec.http[0].route[0].destination.subset", "subset name"},
		{"bad destination port", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {host: r, port: {number: 70000}}}]}]\n",
			"spec.http[0].route[0].destination.port.number", "1..65535"},
		{"negative weight", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {host: a}, weight: -1}, {destination: {host: b}, weight: 101}]}]\n",
			"spec.http[0].route[0].weight", "negative"},
		{"zero total weight", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 0}]}]\n",
			"spec.http[0].route", "add up to 0"},
		{"empty prefix match", vsHead + "  hosts: [r]\n  http: [{match: [{authority: {prefix: ''}}], route: [{destination: {host: r}}]}]\n",
			"spec.http[0].match[0].authority.prefix", "empty"},
		{"bad uri regex", vsHead + "  hosts: [r]\n  http: [{match: [{uri: {regex: '(unclosed'}}], route: [{destination: {host: r}}]}]\n",
			"spec.http[0].match[0].uri.regex", "RE2"},
		{"non-RE2 regex", vsHead + "  hosts: [r]\n  http: [{match: [{headers: {x-id: {regex: '(?=lookahead)'}}}], route: [{destination: {host: r}}]}]\n",
			`spec.http[0].match[0].headers["x-id"].regex`, "invalid regex"},
		{"bad query param regex", vsHead + "  hosts: [r]\n  http: [{match: [{queryParams: {q: {regex: '['}}}], route: [{destination: {host: r}}]}]\n",
			`spec.http[0].match[0].queryParams["q"].regex`, "invalid regex"},
		{"bad header name", vsHead + "  hosts: [r]\n  http: [{match: [{headers: {'x id': {exact: a}}}], route: [{destination: {host: r}}]}]\n",
			`spec.http[0].match[0].headers["x id"]`, "not a valid header name"},
		{"jwt claim routing on mesh", vsHead + "  hosts: [r]\n  http: [{match: [{headers: {'@request.auth.claims.sub': {exact: a}}}], route: [{destination: {host: r}}]}]\n",
			`spec.http[0].match[0].headers["@request.auth.claims.sub"]`, "only supported for gateways"},
		{"bad match port", vsHead + "  hosts: [r]\n  http: [{match: [{port: 70000}], route: [{destination: {host: r}}]}]\n",
			"spec.http[0].match[0].port", "1..65535"},
		{"bad redirect code", vsHead + "  hosts: [r]\n  http: [{redirect: {uri: /x, redirectCode: 200}}]\n",
			"spec.http[0].redirect.redirectCode", "3xx"},
		{"empty redirect", vsHead + "  hosts: [r]\n  http: [{redirect: {redirectCode: 301}}]\n", "spec.http[0].redirect", "at least one"},
		{"bad redirect scheme", vsHead + "  hosts: [r]\n  http: [{redirect: {scheme: ftp}}]\n", "spec.http[0].redirect.scheme", "http"},
		{"bad direct response status", vsHead + "  hosts: [r]\n  http: [{directResponse: {status: 99}}]\n",
			"spec.http[0].directResponse.status", "200..599"},
		{"timeout too small", vsHead + "  hosts: [r]\n  http: [{timeout: 0.0001s, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].timeout", "1ms"},
		{"timeout sub-ms precision", vsHead + "  hosts: [r]\n  http: [{timeout: 1.0005s, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].timeout", "milliseconds"},
		{"negative retries", vsHead + "  hosts: [r]\n  http: [{retries: {attempts: -1}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].retries.attempts", "negative"},
		{"retries disabled but configured", vsHead + "  hosts: [r]\n  http: [{retries: {attempts: 0, retryOn: 5xx}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].retries.attempts", "attempts is 0"},
		{"bad retryOn", vsHead + "  hosts: [r]\n  http: [{retries: {attempts: 2, retryOn: 'bogus'}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].retries.retryOn", "bogus"},
		{"fault percentage above 100", vsHead + "  hosts: [r]\n  http: [{fault: {abort: {percentage: {value: 101}, httpStatus: 500}}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].fault.abort.percentage", "100"},
		{"fault without abort or delay", vsHead + "  hosts: [r]\n  http: [{fault: {}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].fault", "abort, a delay"},
		{"fault bad grpc status", vsHead + "  hosts: [r]\n  http: [{fault: {abort: {grpcStatus: NOPE}}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].fault.abort.grpcStatus", "NOT_FOUND"},
		{"fault delay percent", vsHead + "  hosts: [r]\n  http: [{fault: {delay: {percent: 150, fixedDelay: 1s}}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].fault.delay.percent", "0..100"},
		{"mirror percentage above 100", vsHead + "  hosts: [r]\n  http: [{mirror: {host: m}, mirrorPercentage: {value: 150}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].mirrorPercentage", "0..100"},
		{"mirror and mirrors", vsHead + "  hosts: [r]\n  http: [{mirror: {host: m}, mirrors: [{destination: {host: shadow}}], route: [{destination: {host: r}}]}]\n",
			"spec.http[0].mirrors", "both mirror and mirrors"},
		{"mirrors percentage", vsHead + "  hosts: [r]\n  http: [{mirrors: [{destination: {host: shadow}, percentage: {value: -1}}], route: [{destination: {host: r}}]}]\n",
			"spec.http[0].mirrors[0].percentage", "0..100"},
		{"header operation on host", vsHead + "  hosts: [r]\n  http: [{headers: {request: {remove: [Host]}}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].headers.request.remove[0]", "Host"},
		{"header operation pseudo header", vsHead + "  hosts: [r]\n  http: [{headers: {response: {set: {':status': '200'}}}, route: [{destination: {host: r}}]}]\n",
			`spec.http[0].headers.response.set[":status"]`, "':'"},
		{"header value bad variable", vsHead + "  hosts: [r]\n  http: [{route: [{destination: {host: r}, headers: {request: {add: {x-a: '100%'}}}}]}]\n",
			`spec.http[0].route[0].headers.request.add["x-a"]`, "%"},
		{"authority set twice", vsHead + "  hosts: [r]\n  http: [{rewrite: {authority: a.com}, headers: {request: {set: {':authority': b.com}}}, route: [{destination: {host: r}}]}]\n",
			`spec.http[0].headers.request.set[":authority"]`, "more than once"},
		{"empty rewrite", vsHead + "  hosts: [r]\n  http: [{rewrite: {}, route: [{destination: {host: r}}]}]\n", "spec.http[0].rewrite", "at least one"},
		{"rewrite uri and regex", vsHead + "  hosts: [r]\n  http: [{rewrite: {uri: /a, uriRegexRewrite: {match: a, rewrite: b}}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].rewrite", "only one"},
		{"cors bad method", vsHead + "  hosts: [r]\n  http: [{corsPolicy: {allowMethods: [get]}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].corsPolicy.allowMethods[0]", "not a supported HTTP method"},
		{"cors empty origin", vsHead + "  hosts: [r]\n  http: [{corsPolicy: {allowOrigins: [{exact: ''}]}, route: [{destination: {host: r}}]}]\n",
			"spec.http[0].corsPolicy.allowOrigins[0]", "non-empty"},
		{"tls match without sniHosts", vsHead + "  hosts: [a.example.com]\n  tls: [{match: [{port: 443}], route: [{destination: {host: a.example.com}}]}]\n",
			"spec.tls[0].match[0].sniHosts", "SNI host"},
		{"tls sni outside hosts", vsHead + "  hosts: [a.example.com]\n  tls: [{match: [{sniHosts: [b.example.com]}], route: [{destination: {host: a.example.com}}]}]\n",
			"spec.tls[0].match[0].sniHosts[0]", "not within"},
		{"tls route without destinations", vsHead + "  hosts: [a.example.com]\n  tls: [{match: [{sniHosts: [a.example.com]}]}]\n",
			"spec.tls[0].route", "destination"},
		{"tcp bad subnet", vsHead + "  hosts: [r]\n  tcp: [{match: [{destinationSubnets: [10.0.0.0/33]}], route: [{destination: {host: r}}]}]\n",
			"spec.tcp[0].match[0].destinationSubnets[0]", "CIDR"},
		{"tcp bad source labels", vsHead + "  hosts: [r]\n  tcp: [{match: [{sourceLabels: {'bad key!': x}}], route: [{destination: {host: r}}]}]\n",
			`spec.tcp[0].match[0].sourceLabels["bad key!"]`, "label key"},
		{"bad exportTo", vsHead + "  hosts: [r]\n  exportTo: [Not_A_Namespace]\n" + route, "spec.exportTo[0]", "invalid entry"},
		{"exportTo * with others", vsHead + "  hosts: [r]\n  exportTo: ['*', '.']\n" + route, "spec.exportTo", "public"},

		// DestinationRule.
		{"dr without host", drHead + "  subsets: [{name: v1}]\n", "spec.host", "required"},
		{"dr bad host", drHead + "  host: 'a..b'\n", "spec.host", "invalid"},
		{"subset without name", drHead + "  host: r\n  subsets: [{labels: {version: v1}}]\n", "spec.subsets[0].name", "empty"},
		{"duplicate subset", drHead + "  host: r\n  subsets: [{name: v1}, {name: v1}]\n", "spec.subsets[1].name", "duplicate"},
		{"subset name not DNS label", drHead + "  host: r\n  subsets: [{name: v1.0}]\n", "spec.subsets[0].name", "DNS label"},
		{"subset bad labels", drHead + "  host: r\n  subsets: [{name: v1, labels: {version: 'v 1'}}]\n", `spec.subsets[0].labels["version"]`, "label value"},
		{"empty traffic policy", drHead + "  host: r\n  trafficPolicy: {}\n", "spec.trafficPolicy", "at least one"},
		{"outlier percentage", drHead + "  host: r\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}\n",
			"spec.trafficPolicy.outlierDetection.maxEjectionPercent", "0..100"},
		{"outlier local origin", drHead + "  host: r\n  trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 3}}\n",
			"spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", "splitExternalLocalOriginErrors"},
		{"negative connections", drHead + "  host: r\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}\n",
			"spec.trafficPolicy.connectionPool.tcp.maxConnections", "negative"},
		{"empty connection pool", drHead + "  host: r\n  trafficPolicy: {connectionPool: {}}\n",
			"spec.trafficPolicy.connectionPool", "tcp, http"},
		{"connect timeout", drHead + "  host: r\n  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}\n",
			"spec.trafficPolicy.connectionPool.tcp.connectTimeout", "1ms"},
		{"cookie without name", drHead + "  host: r\n  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 10s}}}}\n",
			"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", "required"},
		{"maglev not prime", drHead + "  host: r\n  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}\n",
			"spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", "prime"},
		{"distribute and failover", drHead + "  host: r\n  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {b: 100}}], failover: [{from: a, to: b}]}}}\n",
			"spec.trafficPolicy.loadBalancer.localityLbSetting", "distribute and failover"},
		{"distribute weights", drHead + "  host: r\n  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 60, c/*: 30}}]}}}\n",
			"spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to", "add up to 90"},
		{"failover same region", drHead + "  host: r\n  trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}}\n",
			"spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]", "different"},
		{"mutual tls without certs", drHead + "  host: r\n  trafficPolicy: {tls: {mode: MUTUAL}}\n",
			"spec.trafficPolicy.tls.clientCertificate", "MUTUAL"},
		{"port level without port", drHead + "  host: r\n  trafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}\n",
			"spec.trafficPolicy.portLevelSettings[0].port", "required"},
		{"port level bad port", drHead + "  host: r\n  trafficPolicy: {portLevelSettings: [{port: {number: 0}, loadBalancer: {simple: RANDOM}}]}\n",
			"spec.trafficPolicy.portLevelSettings[0].port.number", "1..65535"},
		{"port level duplicate", drHead + "  host: r\n  trafficPolicy: {portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}, {port: {number: 80}, tls: {mode: SIMPLE}}]}\n",
			"spec.trafficPolicy.portLevelSettings[1].port.number", "duplicate"},
		{"port level empty", drHead + "  host: r\n  trafficPolicy: {portLevelSettings: [{port: {number: 80}}]}\n",
			"spec.trafficPolicy.portLevelSettings[0]", "at least one"},
		{"subset traffic policy", drHead + "  host: r\n  subsets: [{name: v1, trafficPolicy: {outlierDetection: {minHealthPercent: -5}}}]\n",
			"spec.subsets[0].trafficPolicy.outlierDetection.minHealthPercent", "0..100"},
		{"tunnel bad protocol", drHead + "  host: r\n  trafficPolicy: {tunnel: {protocol: GET, targetHost: a.com, targetPort: 80}}\n",
			"spec.trafficPolicy.tunnel.protocol", "CONNECT"},
		{"selector with wildcard", drHead + "  host: r\n  workloadSelector: {matchLabels: {app: '*'}}\n  trafficPolicy: {tls: {mode: SIMPLE}}\n",
			`spec.workloadSelector.matchLabels["app"]`, "wildcard"},
		{"selector exported elsewhere", drHead + "  host: r\n  workloadSelector: {matchLabels: {app: a}}\n  exportTo: ['*']\n  trafficPolicy: {tls: {mode: SIMPLE}}\n",
			"spec.exportTo", "beyond"},

		// ServiceEntry.
		{"se without hosts", seHead + "  ports: [{number: 80, name: http, protocol: HTTP}]\n", "spec.hosts", "required"},
		{"se wildcard host", seHead + "  hosts: ['*']\n", "spec.hosts[0]", "not allowed"},
		{"se bad host", seHead + "  hosts: ['-bad.com']\n", "spec.hosts[0]", "invalid"},
		{"se duplicate port", seHead + "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 80, name: http2, protocol: HTTP}]\n",
			"spec.ports[1].number", "already defined"},
		{"se duplicate port name", seHead + "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http, protocol: HTTP}]\n",
			"spec.ports[1].name", "already defined"},
		{"se port without name", seHead + "  hosts: [a.com]\n  ports: [{number: 80, protocol: HTTP}]\n", "spec.ports[0].name", "required"},
		{"se port out of range", seHead + "  hosts: [a.com]\n  ports: [{number: 0, name: http, protocol: HTTP}]\n", "spec.ports[0].number", "1..65535"},
		{"se bad protocol", seHead + "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: SPDY}]\n", "spec.ports[0].protocol", "unsupported protocol"},
		{"se bad address", seHead + "  hosts: [a.com]\n  addresses: [not-an-ip]\n", "spec.addresses[0]", "IP"},
		{"se CIDR with DNS", seHead + "  hosts: [a.com]\n  addresses: [10.0.0.0/8]\n  resolution: DNS\n", "spec.addresses", "CIDR"},
		{"se NONE with endpoints", seHead + "  hosts: [a.com]\n  endpoints: [{address: 1.1.1.1}]\n", "spec.endpoints", "NONE"},
		{"se STATIC with hostname endpoint", seHead + "  hosts: [a.com]\n  resolution: STATIC\n  endpoints: [{address: foo.com}]\n",
			"spec.endpoints[0].address", "IP address"},
		{"se STATIC endpoint port not declared", seHead + "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 1.1.1.1, ports: {grpc: 8080}}]\n",
			`spec.endpoints[0].ports["grpc"]`, "not one of"},
		{"se endpoint port out of range", seHead + "  hosts: [a.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 1.1.1.1, ports: {http: 70000}}]\n",
			`spec.endpoints[0].ports["http"]`, "1..65535"},
		{"se DNS with wildcard host", seHead + "  hosts: ['*.a.com']\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n",
			"spec.hosts[0]", "fully qualified"},
		{"se DNS_ROUND_ROBIN two endpoints", seHead + "  hosts: [a.com]\n  resolution: DNS_ROUND_ROBIN\n  endpoints: [{address: b.com}, {address: c.com}]\n",
			"spec.endpoints", "at most one"},
		{"se selector and endpoints", seHead + "  hosts: [a.com]\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}\n  endpoints: [{address: 1.1.1.1}]\n",
			"spec.workloadSelector", "only one"},
		{"se multiple hosts on TCP", seHead + "  hosts: [a.com, b.com]\n  ports: [{number: 3306, name: mysql, protocol: TCP}]\n  resolution: DNS\n",
			"spec.ports[0].protocol", "several hosts"},

		// WorkloadEntry.
		{"we without address", weHead + "  ports: {http: 80}\n", "spec.address", "required"},
		{"we bad address", weHead + "  address: 'not valid!'\n", "spec.address", "neither"},
		{"we bad port", weHead + "  address: 1.1.1.1\n  ports: {http: 0}\n", `spec.ports["http"]`, "1..65535"},
		{"we bad port name", weHead + "  address: 1.1.1.1\n  ports: {Http_1: 80}\n", `spec.ports["Http_1"]`, "port name"},
		{"we unix with ports", weHead + "  address: unix:///sock\n  ports: {http: 80}\n", "spec.ports", "must not have ports"},
		{"we unix relative", weHead + "  address: unix://sock\n", "spec.address", "absolute"},
		{"we bad labels", weHead + "  address: 1.1.1.1\n  labels: {'a/b/c': x}\n", `spec.labels["a/b/c"]`, "label key"},

		// Gateway.
		{"gateway without servers", gwHead + "  selector: {istio: ingressgateway}\n", "spec.servers", "required"},
		{"server without hosts", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}}]\n", "spec.servers[0].hosts", "required"},
		{"server bad host", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['ns/foo*.com']}]\n",
			"spec.servers[0].hosts[0]", "wildcard"},
		{"server short host", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [reviews]}]\n",
			"spec.servers[0].hosts[0]", "short name"},
		{"server bad host namespace", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['Bad_NS/*']}]\n",
			"spec.servers[0].hosts[0]", "invalid namespace"},
		{"server without port", gwHead + "  servers: [{hosts: ['*']}]\n", "spec.servers[0].port", "required"},
		{"server port name", gwHead + "  servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]\n", "spec.servers[0].port.name", "required"},
		{"server bad protocol", gwHead + "  servers: [{port: {number: 80, name: http, protocol: FTP}, hosts: ['*']}]\n",
			"spec.servers[0].port.protocol", "invalid protocol"},
		{"server bad port number", gwHead + "  servers: [{port: {number: 99999, name: http, protocol: HTTP}, hosts: ['*']}]\n",
			"spec.servers[0].port.number", "1..65535"},
		{"https without tls", gwHead + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*']}]\n",
			"spec.servers[0].tls", "required"},
		{"simple tls without certs", gwHead + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: SIMPLE}}]\n",
			"spec.servers[0].tls.serverCertificate", "SIMPLE"},
		{"mutual tls without ca", gwHead + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: MUTUAL, serverCertificate: a, privateKey: b}}]\n",
			"spec.servers[0].tls.caCertificates", "CA"},
		{"http with tls certs", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], tls: {mode: SIMPLE, credentialName: c}}]\n",
			"spec.servers[0].tls", "plain-text"},
		{"tcp with tls", gwHead + "  servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ['*'], tls: {httpsRedirect: true}}]\n",
			"spec.servers[0].tls", "only allowed on HTTPS and TLS"},
		{"istio mutual with credential", gwHead + "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: ISTIO_MUTUAL, credentialName: c}}]\n",
			"spec.servers[0].tls.credentialName", "ISTIO_MUTUAL"},
		{"duplicate server port names", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}, {port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]\n",
			"spec.servers[1].port.name", "duplicate"},
		{"server bad bind", gwHead + "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], bind: localhost}]\n",
			"spec.servers[0].bind", "IP"},

		// Sidecar.
		{"empty sidecar", scHead + "  workloadSelector: {labels: {app: a}}\n", "spec", "empty Sidecar"},
		{"egress host without namespace", scHead + "  egress: [{hosts: [example.com]}]\n", "spec.egress[0].hosts[0]", "namespace/dnsName"},
		{"egress host short name", scHead + "  egress: [{hosts: [ns/reviews]}]\n", "spec.egress[0].hosts[0]", "short name"},
		{"egress without hosts", scHead + "  egress: [{port: {number: 80, protocol: HTTP, name: http}}]\n", "spec.egress[0].hosts", "required"},
		{"catch-all egress not last", scHead + "  egress: [{hosts: ['./*']}, {port: {number: 80, protocol: HTTP, name: http}, hosts: ['./*']}]\n",
			"spec.egress[0].port", "last"},
		{"egress duplicate port", scHead + "  egress: [{port: {number: 80, protocol: HTTP, name: a}, hosts: ['./*']}, {port: {number: 80, protocol: HTTP, name: b}, hosts: ['./*']}]\n",
			"spec.egress[1].port.number", "unique"},
		{"ingress without port", scHead + "  ingress: [{defaultEndpoint: '127.0.0.1:8080'}]\n", "spec.ingress[0].port", "required"},
		{"ingress bad default endpoint", scHead + "  ingress: [{port: {number: 80, protocol: HTTP, name: http}, defaultEndpoint: '10.0.0.1:8080'}]\n",
			"spec.ingress[0].defaultEndpoint", "127.0.0.1"},
		{"egress proxy needs ALLOW_ANY", scHead + "  outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.com, port: {number: 80}}}\n",
			"spec.outboundTrafficPolicy.egressProxy", "ALLOW_ANY"},

		// Service.
		{"service without ports", svcHead + "  selector: {app: a}\n", "spec.ports", "required"},
		{"service port unnamed among several", svcHead + "  ports: [{port: 80}, {port: 81, name: b}]\n", "spec.ports[0].name", "more than one port"},
		{"service duplicate port", svcHead + "  ports: [{port: 80, name: a}, {port: 80, name: b}]\n", "spec.ports[1].port", "duplicate"},
		{"service duplicate port name", svcHead + "  ports: [{port: 80, name: a}, {port: 81, name: a}]\n", "spec.ports[1].name", "duplicate"},
		{"service port out of range", svcHead + "  ports: [{port: 0, name: a}]\n", "spec.ports[0].port", "1..65535"},
		{"service bad target port", svcHead + "  ports: [{port: 80, targetPort: 70000}]\n", "spec.ports[0].targetPort", "1..65535"},
		{"service bad protocol", svcHead + "  ports: [{port: 80, protocol: HTTP}]\n", "spec.ports[0].protocol", "TCP, UDP or SCTP"},
		{"service bad selector", svcHead + "  ports: [{port: 80}]\n  selector: {app: 'a b'}\n", `spec.selector["app"]`, "label value"},
		{"service bad name", "apiVersion: v1\nkind: Service\nmetadata: {name: 1svc}\nspec:\n  ports: [{port: 80}]\n", "metadata.name", "Service name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := decodeOne(t, c.doc)
			errs := Validate(r)
			for _, e := range errs {
				if e.Source != r.Source || e.Key != r.Key() {
					t.Errorf("error %v has source %v key %v, want %v %v", e, e.Source, e.Key, r.Source, r.Key())
				}
				if strings.Contains(e.Field, c.field) && strings.Contains(e.Err.Error(), c.msg) {
					return
				}
			}
			t.Errorf("no error on field %q mentioning %q; got:\n%v", c.field, c.msg, errs)
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	r := decodeOne(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews, "bad host"]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: -5
    - destination: {subset: v2}
      weight: 10
  - redirect: {uri: /x, redirectCode: 200}
`)
	errs := Validate(r)
	want := []string{
		"spec.hosts[1]",
		"spec.http[0].route[0].weight",
		"spec.http[0].route[1].destination.host",
		"spec.http[1].redirect.redirectCode",
	}
	for _, field := range want {
		found := false
		for _, e := range errs {
			if e.Field == field {
				found = true
			}
		}
		if !found {
			t.Errorf("no error for %s; got:\n%v", field, errs)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
}

func TestValidateErrorMessageNamesEverything(t *testing.T) {
	res := Decode([]byte(`
apiVersion: v1
kind: Service
metadata: {name: ok}
spec:
  ports: [{port: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1}, {name: v1}]
`), DecodeOptions{File: "rules/reviews.yaml"})
	if len(res.Errors) != 0 || len(res.Resources) != 2 {
		t.Fatalf("decode: %v %v", res.Resources, res.Errors)
	}
	errs := Validate(res.Resources[1])
	if len(errs) != 1 {
		t.Fatalf("got %v, want one error", errs)
	}
	msg := errs[0].Error()
	for _, part := range []string{"rules/reviews.yaml", "document 2", "DestinationRule shop/reviews", "spec.subsets[1].name", "duplicate subset name \"v1\""} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q does not mention %q", msg, part)
		}
	}
	if es := Validate(res.Resources[0]); len(es) != 0 {
		t.Errorf("valid Service: %v", es)
	}
}

func TestValidateUnknownSpec(t *testing.T) {
	r := &Resource{Kind: "Thing", Meta: Meta{Name: "x", Namespace: "default"}, Spec: 42}
	if errs := Validate(r); len(errs) != 1 || errs[0].Field != "spec" {
		t.Errorf("got %v", errs)
	}
	r = &Resource{Kind: KindService, Meta: Meta{Name: "x", Namespace: "default"}, Spec: &corev1.ServiceSpec{ClusterIP: "None"}}
	if errs := Validate(r); len(errs) != 0 {
		t.Errorf("got %v", errs)
	}
}

func TestHostsOverlap(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"foo.com", "foo.com", true},
		{"foo.com", "bar.com", false},
		{"*.com", "foo.com", true},
		{"bar.com", "*.com", true},
		{"*.foo.com", "foo.com", false},
		{"*", "foo.com", true},
		{"*", "*.com", true},
		{"*.a.com", "*.b.com", false},
	}
	for _, c := range cases {
		if got := hostsOverlap(c.a, c.b); got != c.want {
			t.Errorf("hostsOverlap(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestCheckHeaderFormat(t *testing.T) {
	for _, ok := range []string{"", "foo", "%HOSTNAME%", "100%%", "prefix %HOSTNAME% suffix", `%REQ(x-a)%`, `%PER_REQUEST_STATE(["a", "b"])%`} {
		if err := checkHeaderFormat(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"abc%123", "%START_TIME%%", "100%", "%A([x])%"} {
		if err := checkHeaderFormat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestHeaderSubstitutionRejected: a valid Envoy command is an error naming
// the field (sluice evaluates none; the proxy would NACK it), "%%" is a
// literal '%'.
func TestHeaderSubstitutionRejected(t *testing.T) {
	for _, v := range []string{"%HOSTNAME%", "prefix %REQ(x-a)% suffix"} {
		if err := validateHeaderValue(v); err == nil || !strings.Contains(err.Error(), "not implemented by sluice") {
			t.Errorf("%q: %v, want a not-implemented error", v, err)
		}
	}
	for _, v := range []string{"", "plain", "100%%", "%%HOSTNAME%%"} {
		if err := validateHeaderValue(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestDecodeReportsNotEnforcedKinds(t *testing.T) {
	res := Decode([]byte(`apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: deny-all, namespace: prod}
spec: {accessLogging: [{}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
`), DecodeOptions{File: "p.yaml"})
	if len(res.Errors) != 0 || len(res.Resources) != 0 {
		t.Fatalf("errors %v resources %v", res.Errors, res.Resources)
	}
	if len(res.NotEnforced) != 1 || res.NotEnforced[0].Kind != "extensions.istio.io/WasmPlugin" ||
		res.NotEnforced[0].Namespace != "prod" || res.NotEnforced[0].Name != "deny-all" || res.NotEnforced[0].File != "p.yaml (document 1)" {
		t.Fatalf("not enforced = %+v", res.NotEnforced)
	}
	if len(res.Skipped) != 1 {
		t.Fatalf("skipped = %v (a Deployment is only noted)", res.Skipped)
	}
}
