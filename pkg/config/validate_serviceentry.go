package config

import (
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// serviceEntry follows Istio's ValidateServiceEntry.
func (v *validator) serviceEntry(se *networking.ServiceEntry) {
	if ws := se.WorkloadSelector; ws != nil {
		v.selectorLabels("spec.workloadSelector.labels", ws.Labels)
	}
	if se.WorkloadSelector != nil && se.Endpoints != nil {
		v.errorf("spec.workloadSelector", "only one of workloadSelector and endpoints can be set")
	}

	if len(se.Hosts) == 0 {
		v.errorf("spec.hosts", "required: a ServiceEntry needs at least one host")
	}
	for i, h := range se.Hosts {
		if h == "*" {
			v.errorf(idx("spec.hosts", i), "the wildcard host \"*\" is not allowed in a ServiceEntry; "+
				"use a domain such as \"*.example.com\"")
		} else {
			v.check(idx("spec.hosts", i), validateWildcardDomain(h))
		}
	}

	cidr := false
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		v.check(idx("spec.addresses", i), validateIPSubnet(a))
	}
	if cidr && se.Resolution != networking.ServiceEntry_NONE && se.Resolution != networking.ServiceEntry_STATIC {
		v.errorf("spec.addresses", "CIDR addresses are allowed only with resolution NONE or STATIC, not %s", se.Resolution)
	}

	portNames := map[string]bool{}
	portNumbers := map[uint32]int{}
	for i, port := range se.Ports {
		p := idx("spec.ports", i)
		if port == nil {
			v.errorf(p, "port may not be null")
			continue
		}
		if portNames[port.Name] && port.Name != "" {
			v.errorf(p+".name", "port name %q is already defined", port.Name)
		}
		portNames[port.Name] = true
		if first, dup := portNumbers[port.Number]; dup {
			v.errorf(p+".number", "port %d is already defined by spec.ports[%d]", port.Number, first)
		} else {
			portNumbers[port.Number] = i
		}
		if port.TargetPort != 0 {
			v.check(p+".targetPort", validatePort(int(port.TargetPort)))
		}
		v.check(p+".name", validatePortName(port.Name))
		v.check(p+".protocol", validateProtocol(port.Protocol))
		v.check(p+".number", validatePort(int(port.Number)))
	}

	switch se.Resolution {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) != 0 {
			v.errorf("spec.endpoints", "endpoints cannot be set with resolution NONE; use STATIC or DNS")
		}
	case networking.ServiceEntry_STATIC:
		for i, ep := range se.Endpoints {
			p := idx("spec.endpoints", i)
			if ep == nil {
				v.errorf(p, "endpoint cannot be null")
				continue
			}
			v.workloadEntry(p, ep, portNames, false)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if h != "*" && validateWildcardDomain(h) == nil && validateFQDN(h) != nil {
					v.errorf(idx("spec.hosts", i), "with resolution %s and no endpoints, hosts are resolved by DNS "+
						"and must be fully qualified names without wildcards", se.Resolution)
				}
			}
		}
		if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			v.errorf("spec.endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint")
		}
		for i, ep := range se.Endpoints {
			p := idx("spec.endpoints", i)
			if ep == nil {
				v.errorf(p, "endpoint cannot be null")
				continue
			}
			if !isIPAddress(ep.Address) && validateFQDN(ep.Address) != nil {
				v.errorf(p+".address", "endpoint address %q is neither a valid domain name nor an IP address", ep.Address)
			}
			v.labels(p+".labels", ep.Labels)
			v.endpointPorts(p+".ports", ep.Ports, portNames)
		}
	default:
		v.errorf("spec.resolution", "unsupported resolution %s; use NONE, STATIC, DNS or DNS_ROUND_ROBIN", se.Resolution)
	}

	// With several hosts on one plain TCP port, nothing tells them apart,
	// unless resolution is NONE (hosts are then ignored).
	if se.Resolution != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for i, port := range se.Ports {
			if port != nil && !protocolIsHTTP(port.Protocol) && !protocolIsTLS(port.Protocol) {
				v.errorf(idx("spec.ports", i)+".protocol", "a ServiceEntry with several hosts and resolution %s "+
					"needs HTTP or TLS ports to tell the hosts apart (this one is %q)", se.Resolution, port.Protocol)
				break
			}
		}
	}

	switch se.Location {
	case networking.ServiceEntry_MESH_EXTERNAL, networking.ServiceEntry_MESH_INTERNAL:
	default:
		v.errorf("spec.location", "unsupported location %s; use MESH_EXTERNAL or MESH_INTERNAL", se.Location)
	}
	v.exportTo("spec.exportTo", se.ExportTo, true, false)
}

// endpointPorts checks an endpoint's port map: names declared by the
// ServiceEntry (when servicePorts is not nil) and valid numbers.
func (v *validator) endpointPorts(p string, ports map[string]uint32, servicePorts map[string]bool) {
	for _, name := range slices.Sorted(maps.Keys(ports)) {
		f := mapKey(p, name)
		if servicePorts != nil && !servicePorts[name] {
			v.errorf(f, "port name %q is not one of the ServiceEntry's ports", name)
		}
		v.check(f, validatePortName(name))
		v.check(f, validatePort(int(ports[name])))
	}
}

// workloadEntry follows Istio's validateWorkloadEntry. servicePorts, when
// not nil, holds the port names of the ServiceEntry the endpoint belongs
// to; allowFQDN says whether the address may be a domain name.
func (v *validator) workloadEntry(p string, we *networking.WorkloadEntry, servicePorts map[string]bool, allowFQDN bool) {
	addr := we.Address
	if addr == "" && we.Network == "" {
		v.errorf(p+".address", "required (it may be left empty only when network is set)")
		return
	}
	unix := strings.HasPrefix(addr, unixAddressPrefix)
	switch {
	case unix:
		v.check(p+".address", validateUnixAddress(strings.TrimPrefix(addr, unixAddressPrefix)))
		if len(we.Ports) != 0 {
			v.errorf(p+".ports", "a unix domain socket endpoint (%s) must not have ports", addr)
		}
	case addr != "" && !isIPAddress(addr):
		if !allowFQDN {
			v.errorf(p+".address", "%q is not a valid IP address or unix:// path, as resolution STATIC requires", addr)
		} else if validateFQDN(addr) != nil {
			v.errorf(p+".address", "%q is neither a valid domain name nor an IP address", addr)
		}
	}
	v.endpointPorts(p+".ports", we.Ports, servicePorts)
	v.labels(p+".labels", we.Labels)
	if unix && servicePorts != nil && len(servicePorts) != 1 {
		v.errorf(p+".address", "a unix domain socket endpoint needs a ServiceEntry with exactly one port")
	}
}
