package analysis

import "fmt"

// Field paths messages point at, as Istio's analyzers name them
// (pkg/config/analysis/analyzers/util/find_errorline_utils.go).
const (
	pathDestinationHost   = "{.spec.%s[%d].route[%d].destination.host}"
	pathMirrorHost        = "{.spec.http[%d].mirror.host}"
	pathMirrorsHost       = "{.spec.http[%d].mirrors[%d].host}"
	pathVSGateway         = "{.spec.gateways[%d]}"
	pathWorkloadSelector  = "{.spec.workloadSelector.labels.%s}"
	pathPortInPorts       = "{.spec.ports[%d].port}"
	pathMetadataName      = "{.metadata.name}"
	pathGatewaySelector   = "{.spec.selector.%s}"
	pathCredentialName    = "{.spec.servers[%d].tls.credentialName}"
	pathServiceEntryPort  = "{.spec.ports[%d].name}"
	pathDRTLSCert         = "{.spec.trafficPolicy.tls.caCertificates}"
	pathDRTLSPortLevelCrt = "{.spec.trafficPolicy.portLevelSettings[%d].tls.caCertificates}"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
