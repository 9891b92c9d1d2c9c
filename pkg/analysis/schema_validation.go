package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/schema/validation.go:
// one analyzer per kind, "schema.ValidationAnalyzer.<Kind>", reporting
// what validation rejects (IST0106) and warns about (IST0133). The
// validation is sluice's own (config.Validate, config.Warnings: the checks
// Istio's webhook makes); for VirtualServices the unreachable-rule
// warnings Istio's validation attaches are reported as their own codes
// (IST0130, IST0131; schema_unreachable.go).
func init() {
	for _, k := range []config.Kind{
		config.KindVirtualService, config.KindDestinationRule, config.KindGateway,
		config.KindServiceEntry, config.KindWorkloadEntry, config.KindSidecar,
		config.KindAuthorizationPolicy, config.KindRequestAuthentication, config.KindPeerAuthentication,
	} {
		codes := []string{"IST0106", "IST0133"}
		if k == config.KindVirtualService {
			codes = append(codes, "IST0130", "IST0131")
		}
		register(&Analyzer{
			Name:        "schema.ValidationAnalyzer." + string(k),
			Description: fmt.Sprintf("Runs schema validation as an analyzer and reports any violations for %s", k),
			Codes:       codes,
			run:         func(c *Context) { validateKind(c, k) },
		})
	}
}

func validateKind(c *Context, kind config.Kind) {
	for _, o := range c.Objects(kind) {
		for _, e := range config.Validate(o.Resource) {
			c.report(SchemaValidationError, o, "", fieldError(e))
		}
		for _, e := range config.Warnings(o.Resource) {
			c.report(SchemaWarning, o, "", fieldError(e))
		}
		if vs, ok := o.Spec.(*networking.VirtualService); ok {
			unused := func(rule, reason string) { c.report(VirtualServiceUnreachableRule, o, "", rule, reason) }
			ineffective := func(rule, match, dup string) {
				c.report(VirtualServiceIneffectiveMatch, o, "", rule, match, dup)
			}
			unreachableHTTPRules(vs.Http, unused, ineffective)
			unreachableRules(l4Matches(vs.Tcp, (*networking.TCPRoute).GetMatch), unused, ineffective)
			unreachableRules(l4Matches(vs.Tls, (*networking.TLSRoute).GetMatch), unused, ineffective)
		}
	}
}

// fieldError is the error without the file and resource the message
// already names.
func fieldError(e *config.Error) string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}
