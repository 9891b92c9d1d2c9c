package config

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	tpb "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Validate checks one resource the way Istio's validating webhook does,
// together with the Kubernetes API server's checks on object metadata.
//
// Every problem found is reported, not just the first; each error carries
// r's Source and Key and the path of the offending field, such as
// "spec.http[0].route[1].destination.host". Warnings Istio prints but
// accepts are not reported: Validate returns only what Istio rejects.
func Validate(r *Resource) Errors {
	v := &validator{r: r}
	v.meta()
	switch spec := r.Spec.(type) {
	case *networking.VirtualService:
		v.virtualService(spec)
	case *networking.DestinationRule:
		v.destinationRule(spec)
	case *networking.Gateway:
		v.gateway(spec)
	case *networking.ServiceEntry:
		v.serviceEntry(spec)
	case *networking.WorkloadEntry:
		v.workloadEntry("spec", spec, nil, true)
	case *networking.Sidecar:
		v.sidecar(spec)
	case *securityv1beta1.AuthorizationPolicy:
		v.authorizationPolicy(spec)
	case *securityv1beta1.RequestAuthentication:
		v.requestAuthentication(spec)
	case *securityv1beta1.PeerAuthentication:
		v.peerAuthentication(spec)
	case *tpb.Telemetry:
		v.telemetry(spec)
	case *corev1.ServiceSpec:
		v.service(spec)
	case *corev1.Pod:
		v.pod(spec)
	case *discoveryv1.EndpointSlice:
		v.endpointSlice(spec)
	case *corev1.Node:
	case *Secret:
		v.secret(spec)
	case *gwv1.GatewayClassSpec:
		v.gatewayClass(spec)
	case *gwv1.GatewaySpec:
		v.k8sGateway(spec)
	case *gwv1.HTTPRouteSpec:
		v.gwHTTPRoute(spec)
	case *gwv1.GRPCRouteSpec:
		v.gwGRPCRoute(spec)
	case *gwv1.TCPRouteSpec:
		v.gwTCPRoute(spec)
	case *gwv1.TLSRouteSpec:
		v.gwTLSRoute(spec)
	case *gwv1.ReferenceGrantSpec:
		v.referenceGrant(spec)
	case *corev1.Namespace:
		v.namespace(spec)
	case nil:
		v.errorf("spec", "missing")
	default:
		v.errorf("spec", "sluice cannot validate a %T", spec)
	}
	return v.errs
}

// validator collects the errors of one resource.
type validator struct {
	r    *Resource
	errs Errors
}

func (v *validator) errorf(field, format string, args ...any) {
	v.errs = append(v.errs, &Error{Source: v.r.Source, Key: v.r.Key(), Field: field, Err: fmt.Errorf(format, args...)})
}

// check records err, when there is one, against field.
func (v *validator) check(field string, err error) {
	if err != nil {
		v.errs = append(v.errs, &Error{Source: v.r.Source, Key: v.r.Key(), Field: field, Err: err})
	}
}

// Field path helpers.

func idx(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }
func mapKey(p, k string) string  { return p + "[" + strconv.Quote(k) + "]" }

// Annotations Istio's webhook reacts to on every kind.
const (
	annotationDryRun       = "istio.io/dry-run"
	annotationAlwaysReject = "istio.io/alwaysReject"
)

// meta checks object metadata the way the Kubernetes API server would,
// plus the annotations Istio's webhook rejects.
func (v *validator) meta() {
	r := v.r
	switch {
	case r.Name == "":
		v.errorf("metadata.name", "missing")
	case r.Kind == KindService:
		for _, msg := range k8svalidation.IsDNS1035Label(r.Name) {
			v.errorf("metadata.name", "%q is not a valid Service name: %s", r.Name, msg)
		}
	case r.Kind == KindGateway:
		// Istio requires Gateway names to be DNS labels: no dots.
		if !isDNS1123Label(r.Name) {
			v.errorf("metadata.name", "%q is not a valid Gateway name: it must be a DNS label "+
				"(at most 63 letters, digits and '-', starting and ending with a letter or digit, no dots)", r.Name)
		}
	default:
		for _, msg := range k8svalidation.IsDNS1123Subdomain(r.Name) {
			v.errorf("metadata.name", "%q is not a valid name: %s", r.Name, msg)
		}
	}
	if r.Namespace != "" {
		for _, msg := range k8svalidation.IsDNS1123Label(r.Namespace) {
			v.errorf("metadata.namespace", "%q is not a valid namespace: %s", r.Namespace, msg)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
		for _, msg := range k8svalidation.IsQualifiedName(k) {
			v.errorf(mapKey("metadata.labels", k), "invalid label key: %s", msg)
		}
		for _, msg := range k8svalidation.IsValidLabelValue(r.Labels[k]) {
			v.errorf(mapKey("metadata.labels", k), "invalid label value %q: %s", r.Labels[k], msg)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
		for _, msg := range k8svalidation.IsQualifiedName(strings.ToLower(k)) {
			v.errorf(mapKey("metadata.annotations", k), "invalid annotation key: %s", msg)
		}
	}
	if _, ok := r.Annotations[annotationDryRun]; ok && r.Kind != KindAuthorizationPolicy {
		v.errorf(mapKey("metadata.annotations", annotationDryRun),
			"only AuthorizationPolicy supports this annotation; remove it from %s", r.Kind)
	}
	if _, ok := r.Annotations[annotationAlwaysReject]; ok {
		v.errorf(mapKey("metadata.annotations", annotationAlwaysReject), "annotation found, rejecting")
	}
}

// Names and hosts, following Istio's pkg/config/labels and
// pkg/config/validation/agent.

const dns1123LabelMaxLength = 63

var (
	dns1123LabelRegexp   = regexp.MustCompile(`^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	wildcardPrefixRegexp = regexp.MustCompile(`^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$`)
	// Istio label keys: an optional DNS prefix and '/', then a qualified name.
	labelKeyRegexp   = regexp.MustCompile(`^([a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)*/)?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`)
	labelValueRegexp = regexp.MustCompile(`^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	headerNameRegexp = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)
	// Header values may not hold control characters other than tab.
	headerValueRegexp = regexp.MustCompile("^[^\u0000-\u0008\u000A-\u001F\u007F]*$")
)

func isDNS1123Label(s string) bool {
	return len(s) <= dns1123LabelMaxLength && dns1123LabelRegexp.MatchString(s)
}

func isDNS1123Subdomain(s string) bool {
	return len(k8svalidation.IsDNS1123Subdomain(s)) == 0
}

func isWildcardDNS1123Label(s string) bool {
	return len(s) <= dns1123LabelMaxLength && wildcardPrefixRegexp.MatchString(s)
}

func checkDNS1123Preconditions(name string) error {
	if len(name) > 255 {
		return fmt.Errorf("domain name %q is too long (at most 255 characters)", name)
	}
	if name == "" {
		return errors.New("empty domain name is not allowed")
	}
	return nil
}

func validateDNS1123Labels(domain string) error {
	parts := strings.Split(domain, ".")
	tld := parts[len(parts)-1]
	if _, err := strconv.Atoi(tld); err == nil {
		return fmt.Errorf("domain name %q is invalid: its top-level domain %q cannot be all-numeric", domain, tld)
	}
	for i, label := range parts {
		// The last part may be empty, for fully qualified names like "istio.io.".
		if i == len(parts)-1 && label == "" {
			return nil
		}
		if !isDNS1123Label(label) {
			return fmt.Errorf("domain name %q is invalid: label %q is not a DNS label "+
				"(letters, digits and '-', at most 63 characters)", domain, label)
		}
	}
	return nil
}

// validateFQDN checks a domain name without wildcards.
func validateFQDN(fqdn string) error {
	if err := checkDNS1123Preconditions(fqdn); err != nil {
		return err
	}
	return validateDNS1123Labels(fqdn)
}

// validateWildcardDomain checks a domain name that may start with a
// wildcard label, such as "*.example.com", "*" or a short name "reviews".
func validateWildcardDomain(domain string) error {
	if err := checkDNS1123Preconditions(domain); err != nil {
		return err
	}
	first, rest, hasRest := strings.Cut(domain, ".")
	if !isWildcardDNS1123Label(first) {
		return fmt.Errorf("domain name %q is invalid: label %q is not a DNS label; "+
			"a wildcard '*' is allowed only as the whole first label or its prefix, as in \"*.example.com\"", domain, first)
	}
	if hasRest {
		return validateDNS1123Labels(rest)
	}
	return nil
}

var outboundSNIRegexp = regexp.MustCompile(`outbound_.([0-8].*).*`)

// validateGatewayVirtualServiceHost is validateWildcardDomain for
// VirtualServices bound to gateways, which also accept the
// "outbound_.80_._.host" names Istio generates for SNI routing.
func validateGatewayVirtualServiceHost(sni bool, domain string) error {
	if err := checkDNS1123Preconditions(domain); err != nil {
		return err
	}
	first, _, _ := strings.Cut(domain, ".")
	if sni && first == "outbound_" {
		if !outboundSNIRegexp.MatchString(domain) {
			return fmt.Errorf("domain name %q is invalid: label %q is not valid", domain, first)
		}
		return nil
	}
	return validateWildcardDomain(domain)
}

func validatePartialWildcard(host string) error {
	if strings.Contains(host, "*") && len(host) != 1 && !strings.HasPrefix(host, "*.") {
		return fmt.Errorf("partial wildcard %q is not allowed; use \"*\" or a \"*.\" prefix", host)
	}
	return nil
}

func isIPAddress(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func validateIPAddress(s string) error {
	if !isIPAddress(s) {
		return fmt.Errorf("%q is not a valid IP address", s)
	}
	return nil
}

// validateIPSubnet accepts an IP address or a CIDR block.
func validateIPSubnet(s string) error {
	if strings.Count(s, "/") == 1 {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not a valid CIDR block", s)
		}
		return nil
	}
	return validateIPAddress(s)
}

const unixAddressPrefix = "unix://"

// validateUnixAddress checks the path of a unix domain socket, written
// after the "unix://" prefix.
func validateUnixAddress(addr string) error {
	if addr == "" {
		return errors.New("unix address must not be empty")
	}
	// Abstract sockets start with '@'.
	if strings.HasPrefix(addr, "@") {
		return nil
	}
	if !path.IsAbs(addr) || strings.HasSuffix(addr, "/") {
		return fmt.Errorf("%q is not an absolute path to a file", addr)
	}
	return nil
}

func validatePort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port number %d must be in the range 1..65535", port)
	}
	return nil
}

func validatePortName(name string) error {
	if name == "" {
		return errors.New("port name is required")
	}
	if !isDNS1123Label(name) {
		return fmt.Errorf("invalid port name %q: it must be a DNS label (letters, digits and '-', at most 63 characters)", name)
	}
	return nil
}

// Protocols Istio knows for ports, by their lowercase names.
var protocols = map[string]string{
	"http": "HTTP", "https": "HTTPS", "http2": "HTTP2", "grpc": "GRPC", "grpc-web": "GRPC-Web",
	"http_proxy": "HTTP_PROXY", "tcp": "TCP", "tls": "TLS", "udp": "UDP",
	"mongo": "Mongo", "redis": "Redis", "mysql": "MySQL",
}

const supportedProtocols = "HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, HTTP_PROXY, TCP, TLS, UDP, MONGO, REDIS, MYSQL"

// parseProtocol returns Istio's canonical name of p, or "" when Istio
// does not know it.
func parseProtocol(p string) string { return protocols[strings.ToLower(p)] }

func protocolIsHTTP(p string) bool {
	switch parseProtocol(p) {
	case "HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web":
		return true
	}
	return false
}

func protocolIsTLS(p string) bool {
	switch parseProtocol(p) {
	case "HTTPS", "TLS":
		return true
	}
	return false
}

// validateProtocol accepts the empty string, which asks for protocol
// detection.
func validateProtocol(p string) error {
	if p != "" && parseProtocol(p) == "" {
		return fmt.Errorf("unsupported protocol %q; supported protocols are %s", p, supportedProtocols)
	}
	return nil
}

// validateDuration checks a duration field: at least 1ms, in whole ms.
func validateDuration(d *durationpb.Duration) error {
	if err := d.CheckValid(); err != nil {
		return fmt.Errorf("invalid duration: %v", err)
	}
	dur := d.AsDuration()
	if dur < time.Millisecond {
		return fmt.Errorf("duration %s must be at least 1ms", dur)
	}
	if dur%time.Millisecond != 0 {
		return fmt.Errorf("duration %s has more precision than milliseconds, which is all that is supported", dur)
	}
	return nil
}

// checkDuration checks d, when set, against field.
func (v *validator) checkDuration(field string, d *durationpb.Duration) {
	if d != nil {
		v.check(field, validateDuration(d))
	}
}

func validatePercent(val int32) error {
	if val < 0 || val > 100 {
		return fmt.Errorf("percentage %d is not in the range 0..100", val)
	}
	return nil
}

// validatePercentage checks a fractional Percent: 0, or 0.0001..100.
func validatePercentage(p *networking.Percent) error {
	if p == nil {
		return nil
	}
	if p.Value < 0 || p.Value > 100 || (p.Value > 0 && p.Value < 0.0001) {
		return fmt.Errorf("percentage %v is neither 0 nor in the range 0.0001..100", p.Value)
	}
	return nil
}

// labels checks a label map inside an Istio spec, such as subset labels,
// the way Istio's labels.Instance.Validate does.
func (v *validator) labels(field string, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		f := mapKey(field, k)
		m := labelKeyRegexp.FindStringSubmatch(k)
		switch {
		case m == nil:
			v.errorf(f, "invalid label key %q: it must be a name of letters, digits, '-', '_' and '.', "+
				"optionally after a DNS prefix and '/'", k)
		case len(m[1]) > 0 && len(m[1])-1 > 253:
			v.errorf(f, "invalid label key %q: its DNS prefix is longer than 253 characters", k)
		case len(m[2]) > dns1123LabelMaxLength:
			v.errorf(f, "invalid label key %q: its name is longer than 63 characters", k)
		}
		if !labelValueRegexp.MatchString(labels[k]) {
			v.errorf(f, "invalid label value %q: it must be empty or letters, digits, '-', '_' and '.', "+
				"starting and ending with a letter or digit", labels[k])
		}
	}
}

// selectorLabels checks the labels of a workload selector: no empty keys,
// no wildcards.
func (v *validator) selectorLabels(field string, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		val := labels[k]
		if k == "" {
			v.errorf(mapKey(field, k), "empty key is not supported in a selector")
		}
		if strings.Contains(k, "*") || strings.Contains(val, "*") {
			v.errorf(mapKey(field, k), "wildcards are not supported in a selector: %q", k+"="+val)
		}
	}
}

// workloadSelector checks the istio.io/api/type/v1beta1 selector used by
// DestinationRule.
func (v *validator) workloadSelector(field string, s *typev1beta1.WorkloadSelector) {
	if s != nil {
		v.selectorLabels(field+".matchLabels", s.MatchLabels)
	}
}

// exportTo checks an exportTo list as Istio does. serviceEntry allows "~".
func (v *validator) exportTo(field string, exportTo []string, serviceEntry, drWithSelector bool) {
	if len(exportTo) == 0 {
		return
	}
	ns := v.r.Namespace
	seen := map[string]bool{}
	for i, e := range exportTo {
		f := idx(field, i)
		key := e
		if e == "." {
			key = ns
		}
		if seen[key] {
			if key != e {
				v.errorf(f, "duplicate entry: \".\" and the resource's own namespace %q are the same", ns)
			} else {
				v.errorf(f, "duplicate entry %q", e)
			}
			continue
		}
		switch {
		case e == "~" && serviceEntry:
		case e == "~":
			v.errorf(f, "\"~\" (export to no one) is only allowed for ServiceEntry")
			continue
		case key == "*":
		case !isDNS1123Label(key):
			v.errorf(f, "invalid entry %q: use \".\" (this namespace), \"*\" (all namespaces) or a namespace name", e)
			continue
		}
		seen[key] = true
	}
	if drWithSelector && len(seen) > 0 {
		if seen[ns] {
			if len(seen) > 1 {
				v.errorf(field, "a DestinationRule with a workloadSelector cannot have multiple entries in exportTo")
			}
		} else {
			v.errorf(field, "a DestinationRule with a workloadSelector cannot be exported beyond its own namespace")
		}
	}
	if seen["*"] && len(exportTo) > 1 {
		v.errorf(field, "cannot have both public (\"*\") and other exportTo values; \"*\" alone already exports everywhere")
	}
	if seen["~"] && len(exportTo) > 1 {
		v.errorf(field, "cannot export to no one (\"~\") and to someone")
	}
}

// HTTP header names and values, as in Istio's validation.go.

func validateHTTPHeaderName(name string) error {
	if name == "" {
		return errors.New("header name cannot be empty")
	}
	if !headerNameRegexp.MatchString(name) {
		return fmt.Errorf("%q is not a valid header name: use letters, digits, '-' and '_'", name)
	}
	return nil
}

// isJWTClaimHeader reports whether name is the "@request.auth.claims"
// form Istio accepts for routing on JWT claims at gateways.
func isJWTClaimHeader(name string) bool {
	return strings.HasPrefix(name, "@request.auth.claims.") || strings.HasPrefix(name, "@request.auth.claims[")
}

func isInternalHeader(name string) bool {
	return strings.HasPrefix(name, ":") || strings.EqualFold(name, "host")
}

func isAuthorityHeader(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// validateRequestHeaderSetName checks a header name added or set on
// requests, where the authority may be rewritten.
func validateRequestHeaderSetName(name string) error {
	if name == "" {
		return errors.New("header name cannot be empty")
	}
	if isInternalHeader(name) && !isAuthorityHeader(name) {
		return fmt.Errorf("invalid header %q: header names cannot start with ':'", name)
	}
	return nil
}

// validateHeaderOperationName checks a header name removed from requests
// or changed on responses.
func validateHeaderOperationName(name string) error {
	if name == "" {
		return errors.New("header name cannot be empty")
	}
	if strings.EqualFold(name, "host") {
		return fmt.Errorf("invalid header %q: the Host header cannot be changed here", name)
	}
	if isInternalHeader(name) {
		return fmt.Errorf("invalid header %q: header names cannot start with ':'", name)
	}
	return nil
}

// validateHeaderValue checks a value Envoy will interpret: no control
// characters, and every '%' either doubled or part of a %VARIABLE%.
func validateHeaderValue(value string) error {
	if !headerValueRegexp.MatchString(value) {
		return fmt.Errorf("header value %q contains control characters", value)
	}
	if err := checkHeaderFormat(value); err != nil {
		return fmt.Errorf("header value %q: %w", value, err)
	}
	if hasSubstitution(value) {
		// Valid for Istio (Envoy evaluates %DOWNSTREAM_REMOTE_ADDRESS%,
		// %REQ(x)%, ...), but sluice's proxy evaluates no command and
		// would NACK the route: reject it here, naming the field.
		return fmt.Errorf("header value %q: Envoy substitution commands (%%...%%) are not implemented by sluice yet; write a literal %% as %%%%", value)
	}
	return nil
}

// hasSubstitution reports whether a header value in Envoy's format holds a
// command: a '%' that is not half of "%%".
func hasSubstitution(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			i++
			continue
		}
		return true
	}
	return false
}

// checkHeaderFormat follows the parser of Envoy's
// source/common/router/header_parser.cc, which Istio ports.
func checkHeaderFormat(s string) error {
	const (
		literal = iota
		variableName
		expectArray
		expectString
		inString
		expectDelimiterOrEnd
		expectArgsEnd
		expectVariableEnd
	)
	state := literal
	for pos := 0; pos < len(s); pos++ {
		ch := s[pos]
		hasNext := pos+1 < len(s)
		switch state {
		case literal:
			if ch != '%' {
				break
			}
			if !hasNext {
				return errors.New("un-escaped '%' at the end (write '%%' for a literal '%')")
			}
			if s[pos+1] == '%' {
				pos++
				break
			}
			state = variableName
		case variableName:
			if ch == '%' {
				state = literal
			} else if ch == '(' {
				state = expectArray
			}
		case expectArray:
			if ch == '[' {
				state = expectString
			} else if ch != ' ' {
				state = inString
			}
		case expectDelimiterOrEnd:
			if ch == ',' {
				state = expectString
			} else if ch == ']' {
				state = expectArgsEnd
			} else if ch != ' ' {
				return errors.New("expecting ',', ']' or a space in a variable's arguments")
			}
		case expectString:
			if ch == '"' {
				state = inString
			} else if ch != ' ' {
				return errors.New("expecting '\"' in a variable's arguments")
			}
		case inString:
			if ch == '\\' {
				if !hasNext {
					return errors.New("unterminated backslash in a variable's arguments")
				}
				pos++
			} else if ch == ')' {
				state = expectVariableEnd
			} else if ch == '"' {
				state = expectDelimiterOrEnd
			}
		case expectArgsEnd:
			if ch == ')' {
				state = expectVariableEnd
			} else if ch != ' ' {
				return errors.New("expecting ')' after a variable's arguments")
			}
		case expectVariableEnd:
			if ch == '%' {
				state = literal
			} else if ch != ' ' {
				return errors.New("expecting '%' to end a variable")
			}
		}
	}
	if state != literal {
		return errors.New("unterminated %VARIABLE% expression (write '%%' for a literal '%')")
	}
	return nil
}

// headerOperations checks route or destination header manipulation.
func (v *validator) headerOperations(field string, h *networking.Headers) {
	if h == nil {
		return
	}
	// Istio allows fewer names to be set or added on requests than on
	// responses; removals are checked alike.
	v.headerOps(field+".request", h.Request, validateRequestHeaderSetName)
	v.headerOps(field+".response", h.Response, validateHeaderOperationName)
}

// validateRegex checks a regular expression the way Envoy will run it:
// RE2 syntax, which is Go's, and at most 1024 characters.
func validateRegex(re string) error {
	if len(re) > 1024 {
		return fmt.Errorf("regex is %d characters long; at most 1024 are allowed", len(re))
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("invalid regex %q: %v; Istio uses RE2 syntax (https://github.com/google/re2/wiki/Syntax)", re, err)
	}
	return nil
}

// headerOps checks one direction's set/add/remove operations; setName
// checks the names that are set or added.
func (v *validator) headerOps(field string, ops *networking.Headers_HeaderOperations, setName func(string) error) {
	if ops == nil {
		return
	}
	for _, list := range []struct {
		name string
		m    map[string]string
	}{{"add", ops.Add}, {"set", ops.Set}} {
		for _, name := range slices.Sorted(maps.Keys(list.m)) {
			f := mapKey(field+"."+list.name, name)
			v.check(f, setName(name))
			v.check(f, validateHeaderValue(list.m[name]))
		}
	}
	for i, name := range ops.Remove {
		v.check(idx(field+".remove", i), validateHeaderOperationName(name))
	}
}
