package analysis

import (
	"fmt"
	"strings"
	"testing"
)

// analyzerCase is one row of an analyzer's table: the input YAML and the
// messages expected, each "CODE Kind ns/name: text", in istioctl's order.
type analyzerCase struct {
	name  string
	input string
	want  []string
}

func runAnalyzerTable(t *testing.T, analyzer string, cases []analyzerCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := LoadBytes("in.yaml", []byte(c.input), LoadOptions{DefaultNamespace: "default"})
			if len(s.Errors) > 0 {
				t.Fatalf("input not read: %v", s.Errors)
			}
			msgs, err := Run(s, RunOptions{Analyzers: []string{analyzer}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, m.Code()+" "+m.Resource.String()+": "+m.Text())
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

const ingressPodAndService = `
apiVersion: v1
kind: Pod
metadata:
  name: ingress-1
  namespace: gw
  labels: {app: ingress}
spec:
  containers: [{name: istio-proxy, image: proxy}]
---
apiVersion: v1
kind: Service
metadata:
  name: ingress
  namespace: gw
spec:
  selector: {app: ingress}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
`

// gateway is a Gateway with one server.
func gateway(name, ns, selector string, port int, hosts, tls string) string {
	return fmt.Sprintf(`
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %s, namespace: %s}
spec:
  selector: {%s}
  servers:
  - port: {number: %d, name: p, protocol: HTTPS}
    hosts: [%s]
%s`, name, ns, selector, port, hosts, tls)
}
