package analysis

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/serviceentry/protocoladdresses.go.
func init() {
	register(&Analyzer{
		Name:        "serviceentry.Analyzer",
		Aliases:     []string{"serviceentry.ProtocolAddressesAnalyzer"},
		Description: "Checks the validity of ServiceEntry",
		Codes:       []string{"IST0134"},
		run:         analyzeServiceEntryAddresses,
	})
}

// analyzeServiceEntryAddresses reports each TCP (or protocol-less) port of
// a ServiceEntry without addresses, unless DNS capture with address
// auto-allocation is on in the mesh config's proxyMetadata.
func analyzeServiceEntryAddresses(c *Context) {
	md := c.Mesh.GetDefaultConfig().GetProxyMetadata()
	if md["ISTIO_META_DNS_CAPTURE"] == "true" &&
		(md["ISTIO_META_DNS_AUTO_ALLOCATE"] == "true" || md["PILOT_ENABLE_IP_AUTOALLOCATE"] == "true") {
		return
	}
	for _, o := range c.Objects(config.KindServiceEntry) {
		se := o.Spec.(*networking.ServiceEntry)
		// Files carry no status, so no auto-allocated addresses either.
		if se.Addresses != nil {
			continue
		}
		for i, p := range se.Ports {
			if p.Protocol == "" || strings.EqualFold(p.Protocol, "TCP") {
				c.report(ServiceEntryAddressesRequired, o, sprintf(pathServiceEntryPort, i))
			}
		}
	}
}
