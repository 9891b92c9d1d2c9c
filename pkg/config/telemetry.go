package config

import (
	"fmt"

	tpb "istio.io/api/telemetry/v1alpha1"
)

// TelemetryGroup is the API group of Istio's Telemetry API.
const TelemetryGroup = "telemetry.istio.io"

// KindTelemetry is telemetry.istio.io's Telemetry (v1 and v1alpha1 share
// the istio.io/api telemetry/v1alpha1 Go type, as in Istio).
const KindTelemetry Kind = "Telemetry"

// telemetryVersions are the telemetry.istio.io versions Istio serves.
var telemetryVersions = map[string]bool{"v1": true, "v1alpha1": true}

func decodeTelemetry(r *Resource, d document, version string) error {
	if !telemetryVersions[version] {
		return &Error{Field: "apiVersion", Err: fmt.Errorf("%q is not a version Istio serves for %s (use v1 or v1alpha1)", d.APIVersion, d.Kind)}
	}
	spec := &tpb.Telemetry{}
	if err := unmarshalSpec(d.Spec, spec); err != nil {
		return err
	}
	r.Spec = spec
	return nil
}
