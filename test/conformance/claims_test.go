package conformance

import (
	"testing"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// The runner claims what the support table supports, at the levels
// unclaimedFields walks, and nothing the table rejects or leaves
// unclaimed.
func TestClaimedFieldsFromSupportTable(t *testing.T) {
	for level, keys := range map[string][]string{
		"VirtualService":                                 {"hosts", "http", "exportTo"},
		"VirtualService spec.http[]":                     {"route", "retries", "mirrors"},
		"VirtualService spec.http[].match[]":             {"uri", "withoutHeaders"},
		"DestinationRule trafficPolicy":                  {"connectionPool", "outlierDetection", "loadBalancer"},
		"DestinationRule trafficPolicy.outlierDetection": {"consecutive5xxErrors", "consecutiveErrors"},
		"DestinationRule spec.subsets[]":                 {"trafficPolicy"},
	} {
		for _, k := range keys {
			if !claimedFields[level][k] {
				t.Errorf("%s: %s not claimed", level, k)
			}
		}
	}
	claimedField := map[string]bool{}
	for _, f := range config.SupportTable() {
		if f.Support == config.Supported && f.Unclaimed == "" {
			claimedField[f.Kind+" "+f.Field] = true
		}
	}
	for _, f := range config.SupportTable() {
		if (f.Kind != "VirtualService" && f.Kind != "DestinationRule") || claimedField[f.Kind+" "+f.Field] {
			continue
		}
		// Where this row would sit were it claimed.
		as := f
		as.Support, as.Unclaimed = config.Supported, ""
		for level, keys := range claimedFromTable([]config.Feature{as}) {
			for k := range keys {
				if claimedFields[level][k] {
					t.Errorf("%s %s is %s %s but claimed at %q", f.Kind, f.Field, f.Support, f.Unclaimed, level)
				}
			}
		}
	}
	if claimedFields["DestinationRule trafficPolicy"]["tls"] {
		t.Error("trafficPolicy.tls is marked unclaimed in the table but claimed")
	}
}
