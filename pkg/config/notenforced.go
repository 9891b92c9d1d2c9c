package config

import "strings"

// NotEnforced is a resource sluice accepts and keeps but does not enforce
// yet: a whole kind that is not built. It is never silent: the control
// plane logs a WARN for it on every load and lists it in /debug/status
// and `sluice status` (DEVELOPERS.md: nothing accepted is silently
// ignored).
type NotEnforced struct {
	// Kind is group/Kind, e.g. extensions.istio.io/WasmPlugin.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// File is where it was read, with the document number.
	File string `json:"file"`
	// Reason says what a user must not count on.
	Reason string `json:"reason"`
}

func (n NotEnforced) String() string {
	return n.File + ": " + n.Kind + " " + n.Namespace + "/" + n.Name + " is NOT ENFORCED: " + n.Reason
}

// notEnforcedKinds are the kinds of Istio's and the Gateway API's that
// sluice recognises but does not enforce yet, by API group and kind, with
// what that means for the user. Kinds of other groups (Deployment,
// ConfigMap, ...) have no meaning for the mesh config and are only noted.
var notEnforcedKinds = map[string]map[string]string{
	"extensions.istio.io": {
		"WasmPlugin": "Wasm plugins are not run: sluice has no Wasm runtime yet",
	},
	"networking.istio.io": {
		"EnvoyFilter":   "EnvoyFilter patches are not applied: sluice's proxy is not Envoy",
		"ProxyConfig":   "proxy settings (concurrency, image, environment) are not applied",
		"WorkloadGroup": "workload auto-registration is not built; use WorkloadEntry",
	},
	GatewayAPIGroup: {
		"BackendTLSPolicy": "TLS to backends from BackendTLSPolicy is not applied; use a DestinationRule's tls",
		"BackendLBPolicy":  "session persistence from BackendLBPolicy is not applied",
		"UDPRoute":         "UDP is not proxied",
	},
	"gateway.networking.x-k8s.io": {
		"XListenerSet":          "listener sets are not merged into their Gateway",
		"XBackendTrafficPolicy": "backend traffic policies are not applied",
	},
}

// notEnforcedReason says whether group/kind is a recognised kind that
// sluice does not enforce, and why.
func notEnforcedReason(apiVersion, kind string) (string, bool) {
	group, _ := splitAPIVersion(apiVersion)
	reason, ok := notEnforcedKinds[strings.ToLower(group)][kind]
	return reason, ok
}

// KindNotEnforced reports whether apiVersion/kind is accepted but not
// enforced yet (so a test corpus cannot count on it).
func KindNotEnforced(apiVersion, kind string) bool {
	_, ok := notEnforcedReason(apiVersion, kind)
	return ok
}
