package rbac

import (
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	// Types Istio's golden filters hold in Any fields.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
)

// fromYAML reads a proto message written in YAML (protojson field names).
func fromYAML(t testing.TB, doc string, m proto.Message) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
}

// engine compiles an RBAC written in YAML.
func engine(t testing.TB, doc string) *Engine {
	t.Helper()
	var r rbacpb.RBAC
	fromYAML(t, doc, &r)
	e, err := Compile(&r, "rules")
	if err != nil {
		t.Fatal(err)
	}
	return e
}
