package config

import (
	"strings"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// ResolveHost turns a short host into a fully qualified one the way Istio
// does: a name without dots, such as "reviews" in namespace "default",
// becomes "reviews.default.svc.cluster.local". Names with dots and
// wildcards are returned unchanged.
func ResolveHost(host, namespace, domainSuffix string) string {
	if host == "" || host == "*" || strings.Contains(host, ".") {
		return host
	}
	if strings.HasPrefix(host, "*") {
		return host
	}
	if domainSuffix == "" {
		domainSuffix = meshconfig.DefaultClusterLocalDomain
	}
	return host + "." + namespace + ".svc." + domainSuffix
}

// ServiceHostname is the hostname of Kubernetes Service name in namespace.
func ServiceHostname(name, namespace, domainSuffix string) string {
	if domainSuffix == "" {
		domainSuffix = meshconfig.DefaultClusterLocalDomain
	}
	return name + "." + namespace + ".svc." + domainSuffix
}

// HostMatches reports whether host matches pattern, where pattern may be a
// wildcard such as "*.example.com" or "*".
func HostMatches(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}
