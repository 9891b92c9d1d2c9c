package meshconfig

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// ParseProxyConfig decodes a ProxyConfig from YAML (or JSON) data, as
// Istio's mesh.MergeProxyConfig reads the proxy.istio.io/config pod
// annotation (protomarshal.ApplyYAML: YAML to JSON, then the proto's JSON
// form). Unlike Istio's, unknown fields are errors, so a misspelled
// setting is not silently ignored. No defaults are applied: the fields
// set are the fields the data sets.
func ParseProxyConfig(data []byte) (*meshv1alpha1.ProxyConfig, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	pc := &meshv1alpha1.ProxyConfig{}
	s := strings.TrimSpace(string(js))
	if s == "null" || s == "" {
		return pc, nil
	}
	if !strings.HasPrefix(s, "{") {
		return nil, fmt.Errorf("expected a mapping of ProxyConfig fields, such as \"concurrency: 2\"")
	}
	if err := protojson.Unmarshal(js, pc); err != nil {
		return nil, cleanProtoError(err)
	}
	return pc, nil
}
