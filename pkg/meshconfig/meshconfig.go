// Package meshconfig loads Istio's MeshConfig, the mesh-wide settings
// istiod reads from its "mesh" ConfigMap key, from a YAML file.
package meshconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// DefaultClusterLocalDomain is Kubernetes' cluster domain: the DNS suffix
// of service hostnames ("reviews.default.svc.cluster.local") and the
// default trust domain, as Istio's constants.DefaultClusterLocalDomain is
// both (pilot-discovery's --domain default and pkg/config/mesh's
// DefaultMeshConfig TrustDomain).
const DefaultClusterLocalDomain = "cluster.local"

// Defaults sluice applies to fields left unset. The first three are
// Istio's; the discovery address points proxies at sluice itself.
const (
	DefaultRootNamespace    = "istio-system"
	DefaultTrustDomain      = DefaultClusterLocalDomain
	DefaultDiscoveryAddress = "127.0.0.1:15010"
)

// maxFileBytes bounds what Load reads; a mesh config is a few kilobytes.
const maxFileBytes = 4 << 20

// Default returns the mesh config used when no file is given: Istio's
// defaults for the fields sluice applies, everything else unset.
func Default() *meshv1alpha1.MeshConfig {
	mc := &meshv1alpha1.MeshConfig{EnableTracing: true, DefaultProviders: defaultProviders()}
	applyDefaults(mc)
	return mc
}

// Load reads the mesh config in the YAML file at path. An empty path
// means no file: Load returns Default().
func Load(path string) (*meshv1alpha1.MeshConfig, error) {
	if path == "" {
		return Default(), nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	if info.Size() > maxFileBytes {
		return nil, fmt.Errorf("mesh config %s: file is %d bytes, more than the limit of %d", path, info.Size(), maxFileBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a mesh config from YAML (or JSON) data, naming file in
// errors. Unknown fields are errors, so a misspelled setting is not
// silently ignored. Unset fields get sluice's defaults.
func Parse(data []byte, file string) (*meshv1alpha1.MeshConfig, error) {
	if file == "" {
		file = "<mesh config>"
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("mesh config %s: invalid YAML: %w", file, err)
	}
	mc := &meshv1alpha1.MeshConfig{}
	// enableTracing is a plain bool whose unset value reads false; Istio's
	// default is true, so it is false only when the file says so.
	tracingGiven, defaultProvidersGiven := false, false
	if s := strings.TrimSpace(string(js)); s != "null" && s != "" {
		if !strings.HasPrefix(s, "{") {
			return nil, fmt.Errorf("mesh config %s: expected a mapping of MeshConfig fields, such as \"rootNamespace: istio-system\"", file)
		}
		if err := protojson.Unmarshal(js, mc); err != nil {
			return nil, fmt.Errorf("mesh config %s: %s", file, cleanProtoError(err))
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(js, &top); err != nil {
			return nil, fmt.Errorf("mesh config %s: %w", file, err)
		}
		_, camel := top["enableTracing"]
		_, snake := top["enable_tracing"]
		tracingGiven = camel || snake
		_, dpCamel := top["defaultProviders"]
		_, dpSnake := top["default_providers"]
		defaultProvidersGiven = dpCamel || dpSnake
	}
	if !tracingGiven {
		mc.EnableTracing = true
	}
	if err := checkAccessLog(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	if len(mc.GetDiscoverySelectors()) > 0 {
		// Istio limits what istiod watches to the namespaces these select;
		// sluice's Kubernetes source watches every namespace.
		return nil, fmt.Errorf("mesh config %s: discoverySelectors: not supported (sluice reads every namespace)", file)
	}
	if err := checkProviders(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	if err := checkTracing(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	applyDefaults(mc)
	if !defaultProvidersGiven {
		mc.DefaultProviders = defaultProviders()
	}
	if err := checkDefaultProviders(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	return mc, nil
}

// defaultProviders is what an Istio install's istiod ConfigMap sets when
// the mesh config does not (manifests/charts/istio-control/istio-discovery/
// templates/configmap.yaml: telemetry.v2.prometheus.enabled, on by
// default, gives defaultProviders.metrics [prometheus]).
func defaultProviders() *meshv1alpha1.MeshConfig_DefaultProviders {
	return &meshv1alpha1.MeshConfig_DefaultProviders{Metrics: []string{PrometheusProvider}}
}

// jsonPosition matches the "(line 1:19): " protojson puts before its
// messages: a position in the JSON converted from YAML, not in the file.
var jsonPosition = regexp.MustCompile(`^\(line \d+:\d+\):\s*`)

// cleanProtoError drops protojson's "proto:" prefix, JSON position and
// non-breaking spaces, keeping the field name and problem.
func cleanProtoError(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	msg = strings.TrimSpace(strings.TrimPrefix(msg, "proto:"))
	msg = jsonPosition.ReplaceAllString(msg, "")
	return errors.New(msg)
}

func applyDefaults(mc *meshv1alpha1.MeshConfig) {
	if mc.RootNamespace == "" {
		mc.RootNamespace = DefaultRootNamespace
	}
	if mc.TrustDomain == "" {
		mc.TrustDomain = DefaultTrustDomain
	}
	if mc.OutboundTrafficPolicy == nil {
		mc.OutboundTrafficPolicy = &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{
			Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY,
		}
	}
	if mc.DefaultConfig == nil {
		mc.DefaultConfig = &meshv1alpha1.ProxyConfig{}
	}
	if mc.DefaultConfig.DiscoveryAddress == "" {
		mc.DefaultConfig.DiscoveryAddress = DefaultDiscoveryAddress
	}
	mergeProviders(mc)
}
