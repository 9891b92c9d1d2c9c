package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// Validation of security.istio.io kinds, as Istio's
// pkg/config/validation/validation.go (ValidateAuthorizationPolicy,
// ValidateRequestAuthentication, validateJwtRule) and
// pkg/config/security/security.go (ValidateAttribute, CheckValidPathTemplate,
// CheckServiceAccount, CheckTrustDomainValues) do it.

// The keys of an AuthorizationPolicy's when conditions Istio knows
// (pkg/config/security/security.go).
const (
	AttrRequestHeader     = "request.headers"
	AttrSrcIP             = "source.ip"
	AttrRemoteIP          = "remote.ip"
	AttrSrcNamespace      = "source.namespace"
	AttrSrcServiceAccount = "source.serviceAccount"
	AttrSrcPrincipal      = "source.principal"
	AttrSrcTrustDomain    = "source.trustDomain"
	AttrRequestPrincipal  = "request.auth.principal"
	AttrRequestAudiences  = "request.auth.audiences"
	AttrRequestPresenter  = "request.auth.presenter"
	AttrRequestClaims     = "request.auth.claims"
	AttrDestIP            = "destination.ip"
	AttrDestPort          = "destination.port"
	AttrConnSNI           = "connection.sni"
	AttrExperimental      = "experimental.envoy.filters."
	attrDestLabel         = "destination.labels"
	attrDestName          = "destination.name"
	attrDestNamespace     = "destination.namespace"
	attrDestUser          = "destination.user"
)

// Path templates of AuthorizationPolicy paths (security.MatchOneTemplate,
// MatchAnyTemplate).
const (
	MatchOneTemplate = "{*}"
	MatchAnyTemplate = "{**}"
)

// validPathLiteral is RFC 3986's pchar, what Envoy's uri_template accepts
// in a literal segment.
var validPathLiteral = regexp.MustCompile("^[a-zA-Z0-9-._~%!$&'()+,;:@=]+$")

// ContainsPathTemplate says whether an AuthorizationPolicy path uses {*} or {**}.
func ContainsPathTemplate(v string) bool {
	return strings.Contains(v, MatchOneTemplate) || strings.Contains(v, MatchAnyTemplate)
}

// targetRefKinds are the group/kinds Istio's validation accepts in
// targetRef(s) (validatePolicyTargetReference's allowedTargetRefs).
var targetRefKinds = []struct{ group, kind string }{
	{"core", "Service"}, {"networking.istio.io", "ServiceEntry"},
	{GatewayAPIGroup, "Gateway"}, {GatewayAPIGroup, "GatewayClass"},
}

// policyTargets checks selector, targetRef and targetRefs of a security
// policy as Istio does.
func (v *validator) policyTargets(sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	set := 0
	for _, ok := range []bool{sel != nil, ref != nil, len(refs) > 0} {
		if ok {
			set++
		}
	}
	if set > 1 {
		v.errorf("spec", "only one of targetRefs or workloadSelector can be set")
	}
	v.workloadSelector("spec.selector", sel)
	if ref != nil {
		v.targetRef("spec.targetRef", ref)
	}
	for i, r := range refs {
		v.targetRef(idx("spec.targetRefs", i), r)
	}
}

func (v *validator) targetRef(field string, r *typev1beta1.PolicyTargetReference) {
	if r.Name == "" {
		v.errorf(field+".name", "targetRef name must be set")
	}
	if r.Namespace != "" {
		v.errorf(field+".namespace", "targetRef namespace must not be set; cross namespace referencing is not supported")
	}
	group := r.Group
	if group == "" {
		group = "core"
	}
	for _, k := range targetRefKinds {
		if k.group == group && k.kind == r.Kind {
			return
		}
	}
	v.errorf(field, "targetRef must be to a Service, ServiceEntry, Gateway (%s) or GatewayClass (%s) but was %s/%s",
		GatewayAPIGroup, GatewayAPIGroup, r.Group, r.Kind)
}

// dryRunAnnotation: istio.io/dry-run is allowed on AuthorizationPolicy
// only, with a boolean value and action ALLOW or DENY
// (checkDryRunAnnotation).
func (v *validator) dryRunAnnotation(ap *securityv1beta1.AuthorizationPolicy) {
	val, ok := v.r.Annotations[annotationDryRun]
	if !ok {
		return
	}
	field := mapKey("metadata.annotations", annotationDryRun)
	switch ap.Action {
	case securityv1beta1.AuthorizationPolicy_ALLOW, securityv1beta1.AuthorizationPolicy_DENY:
		if _, err := strconv.ParseBool(val); err != nil {
			v.errorf(field, "invalid value %q: %v", val, err)
		}
	default:
		v.errorf(field, "the annotation %s currently only supports action ALLOW/DENY, found action %v", annotationDryRun, ap.Action)
	}
}

func (v *validator) authorizationPolicy(ap *securityv1beta1.AuthorizationPolicy) {
	v.policyTargets(ap.Selector, ap.TargetRef, ap.TargetRefs)
	v.dryRunAnnotation(ap)
	if ap.Action == securityv1beta1.AuthorizationPolicy_CUSTOM {
		v.customAction(ap)
	}
	if ap.GetProvider() != nil && ap.Action != securityv1beta1.AuthorizationPolicy_CUSTOM {
		v.errorf("spec.provider", "`provider` must not be with non CUSTOM action, found %s", ap.Action)
	}
	if ap.Action == securityv1beta1.AuthorizationPolicy_DENY && ap.Rules == nil {
		v.errorf("spec.rules", "DENY action without `rules` is meaningless as it will never be triggered, "+
			"add an empty rule `{}` if you want it be triggered for every request")
	}
	for i, rule := range ap.Rules {
		field := idx("spec.rules", i)
		if rule == nil {
			v.errorf(field, "`rule` must not be nil")
			continue
		}
		for j, from := range rule.From {
			v.ruleFrom(idx(field+".from", j), from)
		}
		for j, to := range rule.To {
			v.ruleTo(idx(field+".to", j), to)
		}
		for j, c := range rule.When {
			v.condition(idx(field+".when", j), c)
		}
	}
}

// customAction: Istio's checks of CUSTOM policies. (sluice then rejects
// CUSTOM itself: support_table.go.)
func (v *validator) customAction(ap *securityv1beta1.AuthorizationPolicy) {
	if ap.Rules == nil {
		v.errorf("spec.rules", "CUSTOM action without `rules` is meaningless as it will never be triggered, "+
			"add an empty rule `{}` if you want it be triggered for every request")
	} else if ap.GetProvider().GetName() == "" {
		v.errorf("spec.provider.name", "`provider.name` must not be empty")
	}
	for i, rule := range ap.Rules {
		for j, from := range rule.GetFrom() {
			s := from.GetSource()
			for name, n := range map[string]int{"namespaces": len(s.GetNamespaces()), "notNamespaces": len(s.GetNotNamespaces()),
				"serviceAccounts": len(s.GetServiceAccounts()), "notServiceAccounts": len(s.GetNotServiceAccounts()),
				"trustDomains": len(s.GetTrustDomains()), "notTrustDomains": len(s.GetNotTrustDomains()),
				"principals": len(s.GetPrincipals()), "notPrincipals": len(s.GetNotPrincipals()),
				"requestPrincipals": len(s.GetRequestPrincipals()), "notRequestPrincipals": len(s.GetNotRequestPrincipals())} {
				if n != 0 {
					v.errorf(fmt.Sprintf("spec.rules[%d].from[%d].source.%s", i, j, name), "%s is currently not supported with CUSTOM action", name)
				}
			}
		}
		for j, c := range rule.GetWhen() {
			k := c.GetKey()
			if k == AttrSrcNamespace || k == AttrSrcServiceAccount || k == AttrSrcTrustDomain || k == AttrSrcPrincipal ||
				strings.HasPrefix(k, "request.auth.") {
				v.errorf(fmt.Sprintf("spec.rules[%d].when[%d].key", i, j), "%s is currently not supported with CUSTOM action", k)
			}
		}
	}
}

func (v *validator) ruleFrom(field string, from *securityv1beta1.Rule_From) {
	if from == nil {
		v.errorf(field, "`from` must not be nil")
		return
	}
	s := from.Source
	if s == nil {
		v.errorf(field+".source", "`from.source` must not be nil")
		return
	}
	field += ".source"
	if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 &&
		len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 {
		v.errorf(field, "cannot set serviceAccounts with namespaces or principals")
	}
	lists := []struct {
		name   string
		values []string
		check  func(string, []string) error
	}{
		{"principals", s.Principals, nil}, {"notPrincipals", s.NotPrincipals, nil},
		{"requestPrincipals", s.RequestPrincipals, nil}, {"notRequestPrincipals", s.NotRequestPrincipals, nil},
		{"namespaces", s.Namespaces, nil}, {"notNamespaces", s.NotNamespaces, nil},
		{"serviceAccounts", s.ServiceAccounts, checkServiceAccounts}, {"notServiceAccounts", s.NotServiceAccounts, checkServiceAccounts},
		{"trustDomains", s.TrustDomains, checkTrustDomains}, {"notTrustDomains", s.NotTrustDomains, checkTrustDomains},
		{"ipBlocks", s.IpBlocks, checkIPs}, {"notIpBlocks", s.NotIpBlocks, checkIPs},
		{"remoteIpBlocks", s.RemoteIpBlocks, checkIPs}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks, checkIPs},
	}
	empty := true
	for _, l := range lists {
		if len(l.values) > 0 {
			empty = false
		}
		v.check(field+"."+l.name, checkEmptyValues(l.values))
		if l.check != nil {
			v.check(field+"."+l.name, l.check(l.name, l.values))
		}
	}
	if empty {
		v.errorf(field, "`from.source` must not be empty")
	}
}

func (v *validator) ruleTo(field string, to *securityv1beta1.Rule_To) {
	if to == nil {
		v.errorf(field, "`to` must not be nil")
		return
	}
	op := to.Operation
	if op == nil {
		v.errorf(field+".operation", "`to.operation` must not be nil")
		return
	}
	field += ".operation"
	if len(op.Ports)+len(op.Methods)+len(op.Paths)+len(op.Hosts)+len(op.NotPorts)+len(op.NotMethods)+len(op.NotPaths)+len(op.NotHosts) == 0 {
		v.errorf(field, "`to.operation` must not be empty")
	}
	for _, l := range []struct {
		name   string
		values []string
		check  func([]string) error
	}{
		{"hosts", op.Hosts, nil}, {"notHosts", op.NotHosts, nil},
		{"ports", op.Ports, checkPorts}, {"notPorts", op.NotPorts, checkPorts},
		{"methods", op.Methods, nil}, {"notMethods", op.NotMethods, nil},
		{"paths", op.Paths, checkPathTemplates}, {"notPaths", op.NotPaths, checkPathTemplates},
	} {
		v.check(field+"."+l.name, checkEmptyValues(l.values))
		if l.check != nil {
			v.check(field+"."+l.name, l.check(l.values))
		}
	}
}

func (v *validator) condition(field string, c *securityv1beta1.Condition) {
	if c == nil {
		v.errorf(field, "when field cannot be nil")
		return
	}
	if c.Key == "" {
		v.errorf(field+".key", "`key` must not be empty")
		return
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		v.errorf(field, "at least one of `values` or `notValues` must be set for key %s", c.Key)
		return
	}
	if err := validateAttribute(c.Key, c.Values); err != nil {
		v.errorf(field+".values", "invalid `value` for `key` %s: %v", c.Key, err)
	}
	if err := validateAttribute(c.Key, c.NotValues); err != nil {
		v.errorf(field+".notValues", "invalid `notValue` for `key` %s: %v", c.Key, err)
	}
}

// validateAttribute is Istio's security.ValidateAttribute.
func validateAttribute(key string, values []string) error {
	if err := checkEmptyValues(values); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(key, AttrRequestHeader), strings.HasPrefix(key, AttrRequestClaims), strings.HasPrefix(key, AttrExperimental):
		return validateMapKey(key)
	case key == AttrSrcIP, key == AttrRemoteIP, key == AttrDestIP:
		return checkIPs(key, values)
	case key == AttrSrcServiceAccount:
		return checkServiceAccounts(key, values)
	case key == AttrSrcTrustDomain:
		return checkWildcardValues(key, values)
	case key == AttrDestPort:
		return checkPorts(values)
	case key == AttrSrcNamespace, key == AttrSrcPrincipal, key == AttrRequestPrincipal, key == AttrRequestAudiences,
		key == AttrRequestPresenter, key == AttrConnSNI:
		return nil
	case key == attrDestNamespace:
		return fmt.Errorf("attribute %s is replaced by the metadata.namespace", key)
	case strings.HasPrefix(key, attrDestLabel):
		return fmt.Errorf("attribute %s is replaced by the workload selector", key)
	case key == attrDestName, key == attrDestUser:
		return fmt.Errorf("deprecated attribute %s: only supported in v1alpha1", key)
	default:
		return fmt.Errorf("unknown attribute: %s", key)
	}
}

func validateMapKey(key string) error {
	open := strings.Index(key, "[")
	if strings.HasSuffix(key, "]") && open > 0 && open < len(key)-2 {
		return nil
	}
	return fmt.Errorf("bad key (%s): should have format a[b]", key)
}

func checkEmptyValues(values []string) error {
	for _, s := range values {
		if s == "" {
			return fmt.Errorf("empty value not allowed")
		}
	}
	return nil
}

func checkIPs(_ string, values []string) error {
	for _, s := range values {
		if strings.Contains(s, "/") {
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Errorf("bad CIDR range (%s): %v", s, err)
			}
		} else if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("bad IP address (%s)", s)
		}
	}
	return nil
}

func checkPorts(values []string) error {
	for _, s := range values {
		if p, err := strconv.ParseUint(s, 10, 32); err != nil || p > 65535 {
			return fmt.Errorf("bad port (%s)", s)
		}
	}
	return nil
}

func checkWildcardValues(_ string, values []string) error {
	for _, s := range values {
		n := strings.Count(s, "*")
		if n > 1 {
			return fmt.Errorf("at most one wildcard is allowed: %q", s)
		}
		if n == 1 && s != "*" && !strings.HasPrefix(s, "*") && !strings.HasSuffix(s, "*") {
			return fmt.Errorf("wildcard is only allowed at the start or end: %q", s)
		}
	}
	return nil
}

func checkTrustDomains(key string, values []string) error {
	if err := checkWildcardValues(key, values); err != nil {
		return err
	}
	for _, s := range values {
		if strings.Contains(s, "/") {
			return fmt.Errorf("trust domain must not contain '/': %q", s)
		}
	}
	return nil
}

// checkServiceAccounts is Istio's CheckServiceAccount.
func checkServiceAccounts(_ string, values []string) error {
	if len(values) > 16 {
		return fmt.Errorf("may not have more than 16 values")
	}
	for _, s := range values {
		if strings.Contains(s, "*") {
			return fmt.Errorf("wildcard not allowed: %q", s)
		}
		if n := strings.Count(s, "/"); n > 1 {
			return fmt.Errorf("expected format 'serviceAccount' or 'namespace/serviceAccount', found %q", s)
		}
		if len(s) > 320 {
			return fmt.Errorf("value cannot exceed 320 characters, found %q", s)
		}
		if ns, sa, ok := strings.Cut(s, "/"); ok && (ns == "" || sa == "") {
			return fmt.Errorf("expected format 'serviceAccount' or 'namespace/serviceAccount', found %q", s)
		}
	}
	return nil
}

// checkPathTemplates is Istio's CheckValidPathTemplate: {*} and {**} are
// whole segments, {**} only as the last operator, no other braces, and
// literal segments of a templated path are pchars.
func checkPathTemplates(paths []string) error {
	for _, p := range paths {
		templated := ContainsPathTemplate(p)
		foundAny := false
		for _, glob := range strings.Split(strings.Trim(p, "/"), "/") {
			switch {
			case glob == MatchOneTemplate && !foundAny:
				continue
			case glob == MatchAnyTemplate && !foundAny:
				foundAny = true
				continue
			case (glob == MatchAnyTemplate || glob == MatchOneTemplate) && foundAny:
				return fmt.Errorf("invalid or unsupported path %s: {**} is not the last operator", p)
			}
			if strings.ContainsAny(glob, "{}") {
				return fmt.Errorf("invalid or unsupported path %s: contains '{' or '}' beyond a supported path template", p)
			}
			if templated && !validPathLiteral.MatchString(glob) {
				return fmt.Errorf("invalid or unsupported path %s: contains segment %s with invalid string literal", p, glob)
			}
		}
	}
	return nil
}

func (v *validator) requestAuthentication(ra *securityv1beta1.RequestAuthentication) {
	v.policyTargets(ra.Selector, ra.TargetRef, ra.TargetRefs)
	for i, rule := range ra.JwtRules {
		if rule != nil {
			v.jwtRule(idx("spec.jwtRules", i), rule)
		}
	}
}

// jwtRule is Istio's validateJwtRule.
func (v *validator) jwtRule(field string, rule *securityv1beta1.JWTRule) {
	for i, a := range rule.Audiences {
		if a == "" {
			v.errorf(idx(field+".audiences", i), "audience must be non-empty string")
		}
	}
	if rule.Issuer == "" && rule.JwksUri == "" {
		v.errorf(field, "issuer or jwksUri must be non-empty string")
	}
	if rule.JwksUri != "" {
		v.check(field+".jwksUri", ParseJwksURI(rule.JwksUri))
	}
	if rule.Jwks != "" {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(rule.Jwks), &set); err != nil {
			v.errorf(field+".jwks", "jwks parse error: %v", err)
		}
	}
	for i, h := range rule.FromHeaders {
		if h == nil || h.Name == "" {
			v.errorf(idx(field+".fromHeaders", i)+".name", "location header name must be non-empty string")
		}
	}
	for i, p := range rule.FromParams {
		if p == "" {
			v.errorf(idx(field+".fromParams", i), "location query must be non-empty string")
		}
	}
	for i, c := range rule.FromCookies {
		if c == "" {
			v.errorf(idx(field+".fromCookies", i), "cookie name must be non-empty string")
		}
	}
	for i, ch := range rule.OutputClaimToHeaders {
		f := idx(field+".outputClaimToHeaders", i)
		switch {
		case ch == nil:
			v.errorf(f, "outputClaimToHeaders must not be null")
		case ch.Claim == "" || ch.Header == "":
			v.errorf(f, "outputClaimToHeaders header and claim value must be non-empty string")
		default:
			v.check(f+".header", validateHTTPHeaderName(ch.Header))
		}
	}
	v.checkDuration(field+".timeout", rule.Timeout)
}

// ParseJwksURI checks a jwksUri as Istio's security.ParseJwksURI: http or
// https.
func ParseJwksURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URI scheme %q is not supported", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.Atoi(p); err != nil {
			return err
		}
	}
	return nil
}
