package config

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
)

// gateway follows Istio's ValidateGateway.
func (v *validator) gateway(gw *networking.Gateway) {
	if len(gw.Servers) == 0 {
		v.errorf("spec.servers", "required: a Gateway needs at least one server")
	}
	portNames := map[string]int{}
	for i, s := range gw.Servers {
		p := idx("spec.servers", i)
		if s == nil {
			v.errorf(p, "server may not be null")
			continue
		}
		v.server(p, s)
		if s.Port != nil && s.Port.Name != "" {
			if first, dup := portNames[s.Port.Name]; dup {
				v.errorf(p+".port.name", "duplicate port name %q (also spec.servers[%d]); port names must be unique across servers",
					s.Port.Name, first)
			} else {
				portNames[s.Port.Name] = i
			}
		}
	}
	v.labels("spec.selector", gw.Selector)
}

func (v *validator) server(p string, s *networking.Server) {
	if len(s.Hosts) == 0 {
		v.errorf(p+".hosts", "required: a server needs at least one host, such as \"*\", \"example.com\" or \"ns/*.example.com\"")
	}
	for i, h := range s.Hosts {
		v.namespacedHost(idx(p+".hosts", i), h, true)
	}
	portOK := v.serverPort(p+".port", s.Port, s.Bind)
	if strings.HasPrefix(s.Bind, unixAddressPrefix) {
		v.check(p+".bind", validateUnixAddress(strings.TrimPrefix(s.Bind, unixAddressPrefix)))
		if s.Port != nil && s.Port.Number != 0 {
			v.errorf(p+".port.number", "must be 0 for a server bound to a unix domain socket")
		}
	} else if s.Bind != "" {
		v.check(p+".bind", validateIPAddress(s.Bind))
	}
	v.serverTLS(p+".tls", s.Tls)

	if !portOK {
		return
	}
	proto := s.Port.Protocol
	switch {
	case protocolIsTLS(proto) && s.Tls == nil:
		v.errorf(p+".tls", "required for %s servers: set mode and credentialName (or certificates)", parseProtocol(proto))
	case !protocolIsTLS(proto) && s.Tls != nil:
		if protocolIsHTTP(proto) {
			// Plain HTTP servers may only carry tls.httpsRedirect.
			passthrough := s.Tls.Mode == networking.ServerTLSSettings_PASSTHROUGH ||
				s.Tls.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH
			if !passthrough || s.Tls.CaCertificates != "" || s.Tls.PrivateKey != "" || s.Tls.ServerCertificate != "" {
				v.errorf(p+".tls", "a plain-text %s server cannot have TLS settings other than httpsRedirect; "+
					"use protocol HTTPS to terminate TLS", parseProtocol(proto))
			}
		} else {
			v.errorf(p+".tls", "TLS settings are only allowed on HTTPS and TLS servers (this one is %s)", proto)
		}
	}
}

// serverPort checks a Gateway server's port and reports whether it is
// valid.
func (v *validator) serverPort(p string, port *networking.Port, bind string) bool {
	if port == nil {
		v.errorf(p, "required: set number, protocol and name")
		return false
	}
	n := len(v.errs)
	if parseProtocol(port.Protocol) == "" {
		v.errorf(p+".protocol", "invalid protocol %q; supported protocols are %s", port.Protocol, supportedProtocols)
	}
	if port.Number > 0 || !strings.HasPrefix(bind, unixAddressPrefix) {
		v.check(p+".number", validatePort(int(port.Number)))
	}
	if port.TargetPort > 0 { //nolint:staticcheck // deprecated field still decoded
		v.errorf(p+".targetPort", "targetPort has no effect on Gateways; remove it")
	}
	if port.Name == "" {
		v.errorf(p+".name", "required")
	}
	return len(v.errs) == n
}

// serverTLS follows Istio's validateTLSOptions, reporting errors only.
func (v *validator) serverTLS(p string, t *networking.ServerTLSSettings) {
	if t == nil {
		return
	}
	v.certificatePins(p, t)
	if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"serverCertificate", t.ServerCertificate != ""},
			{"privateKey", t.PrivateKey != ""},
			{"caCertificates", t.CaCertificates != ""},
			{"tlsCertificates", len(t.TlsCertificates) > 0},
			{"credentialName", t.CredentialName != ""},
			{"credentialNames", len(t.CredentialNames) > 0},
		} {
			if f.set {
				v.errorf(p+"."+f.name, "ISTIO_MUTUAL uses Istio's own certificates and cannot have %s", f.name)
			}
		}
		return
	}
	if len(t.CredentialNames) > 2 {
		v.errorf(p+".credentialNames", "at most 2 credential names are allowed (one RSA, one ECDSA)")
	}
	if len(t.TlsCertificates) > 2 {
		v.errorf(p+".tlsCertificates", "at most 2 certificates are allowed (one RSA, one ECDSA)")
	}
	sources := 0
	if t.ServerCertificate != "" && t.PrivateKey != "" {
		sources++
	}
	if t.CredentialName != "" {
		sources++
	}
	if len(t.CredentialNames) > 0 {
		sources++
	}
	if len(t.TlsCertificates) > 0 {
		sources++
	}
	if sources > 1 {
		v.errorf(p, "set only one of credentialName, credentialNames, serverCertificate/privateKey and tlsCertificates")
	}
	terminating := t.Mode == networking.ServerTLSSettings_SIMPLE || t.Mode == networking.ServerTLSSettings_MUTUAL ||
		t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL
	if terminating && (t.CredentialName != "" || len(t.CredentialNames) > 0) {
		// Credentials come from a secret; nothing else is required.
		return
	}
	if terminating {
		mode := "SIMPLE"
		if t.Mode != networking.ServerTLSSettings_SIMPLE {
			mode = t.Mode.String()
			if t.CaCertificates == "" {
				v.errorf(p+".caCertificates", "%s TLS requires a client CA bundle (or set credentialName)", mode)
			}
		}
		if len(t.TlsCertificates) > 0 {
			for i, c := range t.TlsCertificates {
				cp := idx(p+".tlsCertificates", i)
				if c.GetServerCertificate() == "" {
					v.errorf(cp+".serverCertificate", "required for %s TLS", mode)
				}
				if c.GetPrivateKey() == "" {
					v.errorf(cp+".privateKey", "required for %s TLS", mode)
				}
			}
		} else {
			if t.ServerCertificate == "" {
				v.errorf(p+".serverCertificate", "%s TLS requires a server certificate (or set credentialName)", mode)
			}
			if t.PrivateKey == "" {
				v.errorf(p+".privateKey", "%s TLS requires a private key (or set credentialName)", mode)
			}
		}
	}
	if t.CaCrl != "" {
		if t.CredentialName != "" {
			v.errorf(p+".caCrl", "not supported with credentialName; put the CRL in the credential")
		}
		if t.Mode == networking.ServerTLSSettings_SIMPLE {
			v.errorf(p+".caCrl", "not supported with SIMPLE TLS")
		}
	}
}

// namespacedHost checks a "namespace/dnsName" host of a Gateway server
// or Sidecar egress listener. Gateways also accept a bare dnsName.
func (v *validator) namespacedHost(f, host string, isGateway bool) {
	ns, name, ok := strings.Cut(host, "/")
	if !ok {
		if isGateway {
			v.hostPart(f, host, true)
		} else {
			v.errorf(f, "host %q must be of the form namespace/dnsName, such as \"./*\", \"istio-system/*\" or \"*/example.com\"", host)
		}
		return
	}
	if ns == "" || name == "" {
		v.errorf(f, "neither the namespace nor the dnsName of %q can be empty", host)
		return
	}
	switch {
	case ns == "*" || ns == ".":
	case ns == "~" && !isGateway:
	case !isDNS1123Label(ns):
		allowed := "\"*\", \".\""
		if !isGateway {
			allowed += ", \"~\""
		}
		v.errorf(f, "invalid namespace %q in %q: use %s or a namespace name", ns, host, allowed)
	}
	v.hostPart(f, name, isGateway)
}

func (v *validator) hostPart(f, name string, isGateway bool) {
	if name != "*" && !strings.Contains(name, ".") {
		v.errorf(f, "short name %q is not allowed here; use a fully qualified name such as %q", name, name+".default.svc.cluster.local")
		return
	}
	if err := validateWildcardDomain(name); err != nil && !(isGateway && isIPAddress(name)) {
		v.check(f, err)
		return
	}
	v.check(f, validatePartialWildcard(name))
}

// sidecar follows Istio's ValidateSidecar.
func (v *validator) sidecar(sc *networking.Sidecar) {
	if ws := sc.WorkloadSelector; ws != nil {
		v.selectorLabels("spec.workloadSelector.labels", ws.Labels)
	}
	if len(sc.Egress) == 0 && len(sc.Ingress) == 0 && sc.OutboundTrafficPolicy == nil && sc.InboundConnectionPool == nil {
		v.errorf("spec", "empty Sidecar: set at least one of egress, ingress, outboundTrafficPolicy or inboundConnectionPool")
		return
	}

	ports := map[uint32]bool{}
	for i, in := range sc.Ingress {
		p := idx("spec.ingress", i)
		if in == nil {
			v.errorf(p, "ingress listener may not be null")
			continue
		}
		if in.Port == nil {
			v.errorf(p+".port", "required for ingress listeners")
			continue
		}
		v.sidecarPort(p+".port", in.Port)
		if in.Bind != "" {
			v.check(p+".bind", validateIPAddress(in.Bind))
		}
		if ports[in.Port.Number] {
			v.errorf(p+".port.number", "port %d is used by another ingress listener; ports must be unique", in.Port.Number)
		}
		ports[in.Port.Number] = true
		v.defaultEndpoint(p+".defaultEndpoint", in.DefaultEndpoint)
		if t := in.Tls; t != nil {
			tp := p + ".tls"
			if len(t.SubjectAltNames) > 0 {
				v.errorf(tp+".subjectAltNames", "not supported in sidecar ingress TLS")
			}
			if t.HttpsRedirect {
				v.errorf(tp+".httpsRedirect", "not supported in sidecar ingress TLS")
			}
			if t.CredentialName != "" || len(t.CredentialNames) > 0 || len(t.TlsCertificates) > 0 {
				v.errorf(tp, "credentialName, credentialNames and tlsCertificates are not supported in sidecar ingress TLS; "+
					"use serverCertificate and privateKey")
			}
			if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				v.errorf(tp+".mode", "mode %s is not allowed in sidecar ingress TLS", t.Mode)
			}
			if !protocolIsTLS(in.Port.Protocol) {
				v.errorf(tp, "TLS settings are only allowed on HTTPS and TLS ports (this one is %q)", in.Port.Protocol)
			}
			v.serverTLS(tp, t)
		}
		v.connectionPool(p+".connectionPool", in.ConnectionPool)
	}
	v.connectionPool("spec.inboundConnectionPool", sc.InboundConnectionPool)

	ports = map[uint32]bool{}
	sockets := map[string]bool{}
	catchAll := false
	for i, eg := range sc.Egress {
		p := idx("spec.egress", i)
		if eg == nil {
			v.errorf(p, "egress listener may not be null")
			continue
		}
		if eg.Port == nil {
			if catchAll {
				v.errorf(p+".port", "only one egress listener may omit its port")
				continue
			}
			if i != len(sc.Egress)-1 {
				v.errorf(p+".port", "the egress listener without a port must be the last one")
			} else {
				catchAll = true
			}
		} else {
			v.egressPort(p, eg)
			if eg.Port.Number == 0 {
				if sockets[eg.Bind] {
					v.errorf(p+".bind", "unix domain socket %q is used by another egress listener", eg.Bind)
				}
				sockets[eg.Bind] = true
			} else {
				if ports[eg.Port.Number] {
					v.errorf(p+".port.number", "port %d is used by another egress listener; ports must be unique", eg.Port.Number)
				}
				ports[eg.Port.Number] = true
			}
		}
		if len(eg.Hosts) == 0 {
			v.errorf(p+".hosts", "required: an egress listener needs at least one host, such as \"./*\" or \"istio-system/*\"")
		}
		for j, h := range eg.Hosts {
			v.namespacedHost(idx(p+".hosts", j), h, false)
		}
	}

	if tp := sc.OutboundTrafficPolicy; tp != nil && tp.EgressProxy != nil {
		p := "spec.outboundTrafficPolicy.egressProxy"
		switch {
		case tp.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY:
			v.errorf(p, "egressProxy can only be set with mode ALLOW_ANY")
		case tp.EgressProxy.Port == nil:
			v.check(p+".host", validateFQDN(tp.EgressProxy.Host))
			v.errorf(p+".port", "required")
		default:
			v.check(p+".host", validateFQDN(tp.EgressProxy.Host))
			v.destination(p, tp.EgressProxy)
		}
	}
}

func (v *validator) sidecarPort(p string, port *networking.SidecarPort) {
	if port.TargetPort > 0 { //nolint:staticcheck // deprecated field still decoded
		v.errorf(p+".targetPort", "targetPort has no effect on Sidecars; remove it")
	}
	if port.Name != "" {
		v.check(p+".name", validatePortName(port.Name))
	}
	v.check(p+".protocol", validateProtocol(port.Protocol))
	v.check(p+".number", validatePort(int(port.Number)))
}

func (v *validator) egressPort(p string, eg *networking.IstioEgressListener) {
	port := eg.Port
	if port.Number != 0 {
		v.sidecarPort(p+".port", port)
		if eg.Bind != "" {
			v.check(p+".bind", validateIPAddress(eg.Bind))
		}
		return
	}
	// Port 0 means a unix domain socket listener.
	if port.TargetPort > 0 { //nolint:staticcheck // deprecated field still decoded
		v.errorf(p+".port.targetPort", "targetPort has no effect on Sidecars; remove it")
	}
	if port.Name != "" {
		v.check(p+".port.name", validatePortName(port.Name))
	}
	v.check(p+".port.protocol", validateProtocol(port.Protocol))
	if !strings.HasPrefix(eg.Bind, unixAddressPrefix) {
		v.errorf(p+".bind", "a listener with port number 0 must bind a unix domain socket (unix:///path)")
	} else {
		v.check(p+".bind", validateUnixAddress(strings.TrimPrefix(eg.Bind, unixAddressPrefix)))
	}
	if eg.CaptureMode != networking.CaptureMode_DEFAULT && eg.CaptureMode != networking.CaptureMode_NONE {
		v.errorf(p+".captureMode", "must be DEFAULT or NONE for unix domain socket listeners")
	}
}

// defaultEndpoint checks a sidecar ingress defaultEndpoint:
// 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://.
func (v *validator) defaultEndpoint(f, ep string) {
	if ep == "" {
		return
	}
	if strings.HasPrefix(ep, unixAddressPrefix) {
		v.check(f, validateUnixAddress(strings.TrimPrefix(ep, unixAddressPrefix)))
		return
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		v.errorf(f, "%q is not host:port: %v", ep, err)
		return
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		v.errorf(f, "%q must be of the form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>", ep)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		v.errorf(f, "port %q is not a number", port)
		return
	}
	v.check(f, validatePort(n))
}

// service checks a Kubernetes Service spec the way the API server's
// validation does, for the fields sluice uses.
func (v *validator) service(svc *corev1.ServiceSpec) {
	// Istio reads the annotation as a comma-separated exportTo list
	// (kube/conversion.go ConvertService); "~" exports to no one.
	if a, ok := v.r.Annotations[AnnotationExportTo]; ok {
		var list []string
		for _, e := range strings.Split(a, ",") {
			list = append(list, strings.TrimSpace(e))
		}
		v.exportTo("metadata.annotations["+AnnotationExportTo+"]", list, true, false)
	}
	switch svc.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	case corev1.ServiceTypeExternalName:
		if svc.ExternalName == "" {
			v.errorf("spec.externalName", "required for type ExternalName")
		} else {
			v.check("spec.externalName", validateFQDN(strings.TrimSuffix(svc.ExternalName, ".")))
		}
	default:
		v.errorf("spec.type", "unsupported type %q; use ClusterIP, NodePort, LoadBalancer or ExternalName", svc.Type)
	}
	headless := svc.ClusterIP == corev1.ClusterIPNone
	if svc.ClusterIP != "" && !headless {
		v.check("spec.clusterIP", validateIPAddress(svc.ClusterIP))
	}
	for i, ip := range svc.ClusterIPs {
		switch {
		case i == 0 && ip != svc.ClusterIP && svc.ClusterIP != "":
			v.errorf("spec.clusterIPs[0]", "%q must equal spec.clusterIP %q", ip, svc.ClusterIP)
		case ip != corev1.ClusterIPNone || i > 0:
			v.check(idx("spec.clusterIPs", i), validateIPAddress(ip))
		}
	}
	if len(svc.Ports) == 0 && !headless && svc.Type != corev1.ServiceTypeExternalName {
		v.errorf("spec.ports", "required: a Service needs at least one port (unless it is headless or ExternalName)")
	}
	names := map[string]int{}
	type portKey struct {
		port     int32
		protocol corev1.Protocol
	}
	seen := map[portKey]int{}
	nodePorts := svc.Type == corev1.ServiceTypeNodePort || svc.Type == corev1.ServiceTypeLoadBalancer
	for i, port := range svc.Ports {
		p := idx("spec.ports", i)
		if port.Name == "" {
			if len(svc.Ports) > 1 {
				v.errorf(p+".name", "required when a Service has more than one port")
			}
		} else {
			for _, msg := range k8svalidation.IsDNS1123Label(port.Name) {
				v.errorf(p+".name", "invalid port name %q: %s", port.Name, msg)
			}
			if first, dup := names[port.Name]; dup {
				v.errorf(p+".name", "duplicate port name %q (also spec.ports[%d])", port.Name, first)
			} else {
				names[port.Name] = i
			}
		}
		v.check(p+".port", validatePort(int(port.Port)))
		proto := port.Protocol
		switch proto {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			v.errorf(p+".protocol", "unsupported protocol %q; use TCP, UDP or SCTP", proto)
		}
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		k := portKey{port.Port, proto}
		if first, dup := seen[k]; dup {
			v.errorf(p+".port", "duplicate port %d/%s (also spec.ports[%d])", port.Port, proto, first)
		} else {
			seen[k] = i
		}
		switch port.TargetPort.Type {
		case intstr.Int:
			// 0 means "same as port".
			if port.TargetPort.IntVal != 0 {
				v.check(p+".targetPort", validatePort(int(port.TargetPort.IntVal)))
			}
		case intstr.String:
			for _, msg := range k8svalidation.IsValidPortName(port.TargetPort.StrVal) {
				v.errorf(p+".targetPort", "invalid named port %q: %s", port.TargetPort.StrVal, msg)
			}
		}
		if port.NodePort != 0 {
			if !nodePorts {
				v.errorf(p+".nodePort", "only allowed for type NodePort or LoadBalancer")
			} else {
				v.check(p+".nodePort", validatePort(int(port.NodePort)))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(svc.Selector)) {
		f := mapKey("spec.selector", k)
		for _, msg := range k8svalidation.IsQualifiedName(k) {
			v.errorf(f, "invalid label key: %s", msg)
		}
		for _, msg := range k8svalidation.IsValidLabelValue(svc.Selector[k]) {
			v.errorf(f, "invalid label value %q: %s", svc.Selector[k], msg)
		}
	}
}

// secret checks a Kubernetes Secret: a kubernetes.io/tls secret must hold
// a certificate and its key, as the API server requires.
func (v *validator) secret(s *Secret) {
	if s.Type != "kubernetes.io/tls" {
		return
	}
	for _, k := range []string{"tls.crt", "tls.key"} {
		if len(s.Data[k]) == 0 {
			v.errorf("data."+k, "required for a kubernetes.io/tls secret")
		}
	}
}

// certificatePins checks the SPKI and hash pins' form (Envoy NACKs others):
// base64 of a SHA-256 digest; hex of one, colons allowed.
func (v *validator) certificatePins(p string, t *networking.ServerTLSSettings) {
	for i, s := range t.VerifyCertificateSpki {
		if b, err := base64.StdEncoding.DecodeString(s); err != nil || len(b) != sha256.Size {
			v.errorf(idx(p+".verifyCertificateSpki", i), "%q is not the base64 of a SHA-256 digest", s)
		}
	}
	for i, s := range t.VerifyCertificateHash {
		if b, err := hex.DecodeString(strings.ReplaceAll(s, ":", "")); err != nil || len(b) != sha256.Size {
			v.errorf(idx(p+".verifyCertificateHash", i), "%q is not the hex of a SHA-256 digest", s)
		}
	}
}
