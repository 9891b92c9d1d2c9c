package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestWaypointLabelsRejected: a waypoint label is refused on each kind
// istiod reads it from, naming the label; the same objects without it
// are accepted.
func TestWaypointLabelsRejected(t *testing.T) {
	docs := map[string]string{
		"Service":       "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: shop%s}\nspec: {ports: [{port: 80}]}\n",
		"Namespace":     "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop%s}\n",
		"ServiceEntry":  "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a, namespace: shop%s}\nspec: {hosts: [a.example], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}\n",
		"WorkloadEntry": "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a, namespace: shop%s}\nspec: {address: 10.0.0.1}\n",
	}
	for kind, doc := range docs {
		for _, label := range waypointLabels {
			labelled := fmt.Sprintf(doc, ", labels: {"+label+": waypoint}")
			res := Decode([]byte(labelled), DecodeOptions{File: "w.yaml"})
			if len(res.Errors) > 0 || len(res.Resources) != 1 {
				t.Fatalf("%s: %v", kind, res.Errors)
			}
			got := fmt.Sprint(Unsupported(res.Resources[0]))
			if !strings.Contains(got, "metadata.labels["+label+"]") || !strings.Contains(got, "waypoints") {
				t.Errorf("%s labelled %s: %q", kind, label, got)
			}
		}
		res := Decode([]byte(fmt.Sprintf(doc, "")), DecodeOptions{File: "w.yaml"})
		if len(res.Resources) != 1 || len(Unsupported(res.Resources[0])) > 0 {
			t.Errorf("%s without the label: %v %v", kind, res.Errors, Unsupported(res.Resources[0]))
		}
	}
}
