package meshconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

func TestDefault(t *testing.T) {
	mc := Default()
	if mc.RootNamespace != "istio-system" {
		t.Errorf("rootNamespace = %q", mc.RootNamespace)
	}
	if mc.TrustDomain != "cluster.local" {
		t.Errorf("trustDomain = %q", mc.TrustDomain)
	}
	if got := mc.GetOutboundTrafficPolicy().GetMode(); got != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
		t.Errorf("outboundTrafficPolicy.mode = %v", got)
	}
	if got := mc.GetDefaultConfig().GetDiscoveryAddress(); got != "127.0.0.1:15010" {
		t.Errorf("defaultConfig.discoveryAddress = %q", got)
	}
	if !mc.EnableTracing {
		t.Error("enableTracing unset by default; Istio's default is true")
	}
	// Each call returns a fresh value callers may change.
	mc.RootNamespace = "changed"
	if Default().RootNamespace != "istio-system" {
		t.Error("Default shares state between calls")
	}
}

func TestLoadEmptyPathIsDefault(t *testing.T) {
	mc, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if mc.RootNamespace != "istio-system" || mc.GetDefaultConfig().GetDiscoveryAddress() != DefaultDiscoveryAddress {
		t.Errorf("got %v", mc)
	}
}

func TestParseEmptyDocument(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "{}"} {
		mc, err := Parse([]byte(doc), "mesh.yaml")
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if mc.TrustDomain != DefaultTrustDomain {
			t.Errorf("%q: trustDomain = %q", doc, mc.TrustDomain)
		}
	}
}

func TestParseRegistryOnly(t *testing.T) {
	mc, err := Parse([]byte("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nrootNamespace: mesh-root\ntrustDomain: example.org\n"), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := mc.GetOutboundTrafficPolicy().GetMode(); got != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		t.Errorf("mode = %v, want REGISTRY_ONLY", got)
	}
	if mc.RootNamespace != "mesh-root" || mc.TrustDomain != "example.org" {
		t.Errorf("explicit values not kept: %q %q", mc.RootNamespace, mc.TrustDomain)
	}
}

// TestParseEnableTracing: an absent enableTracing is Istio's default,
// true; an explicit false stays false.
func TestParseEnableTracing(t *testing.T) {
	for doc, want := range map[string]bool{
		"":                         true,
		"rootNamespace: mesh-root": true,
		"enableTracing: false":     false,
		"enable_tracing: false":    false,
		"enableTracing: true":      true,
	} {
		mc, err := Parse([]byte(doc), "mesh.yaml")
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if mc.EnableTracing != want {
			t.Errorf("%q: enableTracing = %v, want %v", doc, mc.EnableTracing, want)
		}
	}
}

func TestParseUnknownField(t *testing.T) {
	_, err := Parse([]byte("rootNamespace: istio-system\noutboundTrafficPolicyy:\n  mode: REGISTRY_ONLY\n"), "/etc/sluice/mesh.yaml")
	if err == nil {
		t.Fatal("no error for an unknown field")
	}
	for _, want := range []string{"/etc/sluice/mesh.yaml", "outboundTrafficPolicyy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\u00a0") || strings.Contains(err.Error(), "(line") {
		t.Errorf("error %q has non-breaking spaces", err)
	}
}

func TestParseNestedUnknownField(t *testing.T) {
	_, err := Parse([]byte("defaultConfig:\n  discoveryAdress: x:1\n"), "mesh.yaml")
	if err == nil || !strings.Contains(err.Error(), "discoveryAdress") || !strings.Contains(err.Error(), "mesh.yaml") {
		t.Errorf("got %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	for name, doc := range map[string]string{
		"bad YAML":   "rootNamespace: [\n",
		"not a map":  "- a\n- b\n",
		"bad enum":   "outboundTrafficPolicy:\n  mode: SOMETIMES\n",
		"wrong type": "enableTracing: {a: b}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(doc), "mesh.yaml")
			if err == nil || !strings.Contains(err.Error(), "mesh.yaml") {
				t.Errorf("got %v, want an error naming the file", err)
			}
		})
	}
}

func TestParseAcceptsFieldsUsedLater(t *testing.T) {
	const doc = `
accessLogFile: /dev/stdout
enableTracing: true
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  holdApplicationUntilProxyStarts: true
  proxyMetadata:
    ISTIO_META_DNS_CAPTURE: "true"
  tracing:
    sampling: 10
extensionProviders:
- name: otel
  opentelemetry:
    service: opentelemetry-collector.observability.svc.cluster.local
    port: 4317
defaultProviders:
  tracing: [otel]
`
	mc, err := Parse([]byte(doc), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !mc.EnableTracing || mc.AccessLogFile != "/dev/stdout" {
		t.Errorf("top-level fields: %v", mc)
	}
	if got := mc.GetDefaultConfig().GetDiscoveryAddress(); got != "istiod.istio-system.svc:15012" {
		t.Errorf("explicit discoveryAddress replaced: %q", got)
	}
	if got := mc.GetDefaultConfig().GetProxyMetadata()["ISTIO_META_DNS_CAPTURE"]; got != "true" {
		t.Errorf("proxyMetadata = %q", got)
	}
	// Istio's built-in providers first, the file's appended.
	if len(mc.ExtensionProviders) != 3 || mc.ExtensionProviders[2].GetOpentelemetry().GetPort() != 4317 {
		t.Errorf("extensionProviders = %v", mc.ExtensionProviders)
	}
	if got := mc.GetDefaultProviders(); len(got.GetTracing()) != 1 || len(got.GetMetrics()) != 0 {
		t.Errorf("defaultProviders given by the file are kept as written: %v", got)
	}
	// Defaults still fill what the file left out.
	if mc.RootNamespace != DefaultRootNamespace ||
		mc.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
		t.Errorf("defaults not applied: %v", mc)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(path, []byte("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mc, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if mc.GetOutboundTrafficPolicy().GetMode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		t.Errorf("mode = %v", mc.GetOutboundTrafficPolicy().GetMode())
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: got %v", err)
	}
}

// TestParsePathNormalization: Istio's pathNormalization levels parse by
// name, and a misspelled level is an error naming it.
func TestParsePathNormalization(t *testing.T) {
	for _, level := range []string{"NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"} {
		mc, err := Parse([]byte("pathNormalization: {normalization: "+level+"}\n"), "mesh.yaml")
		if err != nil {
			t.Fatalf("%s: %v", level, err)
		}
		if got := mc.GetPathNormalization().GetNormalization().String(); got != level {
			t.Errorf("%s parsed as %s", level, got)
		}
	}
	if _, err := Parse([]byte("pathNormalization: {normalization: MERGE}\n"), "mesh.yaml"); err == nil || !strings.Contains(err.Error(), "MERGE") {
		t.Errorf("unknown level: %v", err)
	}
	if got := Default().GetPathNormalization().GetNormalization(); got != meshv1alpha1.MeshConfig_ProxyPathNormalization_DEFAULT {
		t.Errorf("default level %v, want DEFAULT (BASE)", got)
	}
}

func TestDiscoverySelectorsRejected(t *testing.T) {
	_, err := Parse([]byte("discoverySelectors:\n- matchLabels: {istio-discovery: enabled}\n"), "mesh.yaml")
	if err == nil || !strings.Contains(err.Error(), "mesh.yaml: discoverySelectors: not supported") {
		t.Fatalf("err = %v, want discoverySelectors rejected naming the file", err)
	}
}
