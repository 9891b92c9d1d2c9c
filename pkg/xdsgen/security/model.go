package security

import (
	"errors"
	"strings"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// One AuthorizationPolicy rule consolidated into RBAC permissions (what
// is requested: to + destination conditions) and principals (who asks:
// from + source and request conditions), as Istio's
// pilot/pkg/security/authz/model/model.go.

// Internal keys of the matchers Istio generates.
const (
	methodHeader = ":method"
	hostHeader   = ":authority"
	pathKey      = "path-matcher"
)

type rule struct {
	key               string
	values, notValues []string
	g                 generator
	extended          extendedGenerator
}

type ruleList struct{ rules []*rule }

type ruleModel struct {
	permissions []ruleList
	principals  []ruleList
}

func (l *ruleList) copy() ruleList { return ruleList{rules: append([]*rule{}, l.rules...)} }

func (l *ruleList) add(front bool, r *rule) {
	if len(r.values) == 0 && len(r.notValues) == 0 {
		return
	}
	if front {
		l.rules = append([]*rule{r}, l.rules...)
	} else {
		l.rules = append(l.rules, r)
	}
}

func (l *ruleList) insertFront(g generator, key string, values, notValues []string) {
	l.add(true, &rule{key: key, values: values, notValues: notValues, g: g})
}

func (l *ruleList) insertFrontExtended(g extendedGenerator, key string, values, notValues []string) {
	l.add(true, &rule{key: key, values: values, notValues: notValues, extended: g})
}

// when maps a condition key to its generator and to whether it is part
// of the permission (destination) or the principal (source).
func whenGenerator(key, policyNS string) (g generator, ext extendedGenerator, permission bool, err error) {
	switch {
	case key == config.AttrDestIP:
		return destIPGenerator{}, nil, true, nil
	case key == config.AttrDestPort:
		return destPortGenerator{}, nil, true, nil
	case key == config.AttrConnSNI:
		return connSNIGenerator{}, nil, true, nil
	case strings.HasPrefix(key, config.AttrExperimental):
		return nil, envoyFilterGenerator{}, true, nil
	case key == config.AttrSrcIP:
		return srcIPGenerator{}, nil, false, nil
	case key == config.AttrRemoteIP:
		return remoteIPGenerator{}, nil, false, nil
	case key == config.AttrSrcNamespace:
		return srcNamespaceGenerator{}, nil, false, nil
	case key == config.AttrSrcTrustDomain:
		return srcTrustDomainGenerator{}, nil, false, nil
	case key == config.AttrSrcServiceAccount:
		return srcServiceAccountGenerator{policyNamespace: policyNS}, nil, false, nil
	case key == config.AttrSrcPrincipal:
		return srcPrincipalGenerator{}, nil, false, nil
	case key == config.AttrRequestPrincipal:
		return nil, requestPrincipalGenerator{}, false, nil
	case key == config.AttrRequestAudiences:
		return nil, claimGenerator{claim: "aud"}, false, nil
	case key == config.AttrRequestPresenter:
		return nil, claimGenerator{claim: "azp"}, false, nil
	case strings.HasPrefix(key, config.AttrRequestHeader):
		return requestHeaderGenerator{}, nil, false, nil
	case strings.HasPrefix(key, config.AttrRequestClaims):
		return nil, claimGenerator{}, false, nil
	}
	return nil, nil, false, errors.New("unknown attribute " + key)
}

// newModel is Istio's model.New for one rule of a policy in policyNS.
func newModel(policyNS string, r *securityv1beta1.Rule) (*ruleModel, error) {
	var m ruleModel
	var basePermission, basePrincipal ruleList
	for _, when := range r.When {
		g, ext, perm, err := whenGenerator(when.Key, policyNS)
		if err != nil {
			return nil, err
		}
		target := &basePrincipal
		if perm {
			target = &basePermission
		}
		target.add(false, &rule{key: when.Key, values: when.Values, notValues: when.NotValues, g: g, extended: ext})
	}
	for _, from := range r.From {
		merged := basePrincipal.copy()
		if s := from.Source; s != nil {
			merged.insertFront(srcIPGenerator{}, config.AttrSrcIP, s.IpBlocks, s.NotIpBlocks)
			merged.insertFront(remoteIPGenerator{}, config.AttrRemoteIP, s.RemoteIpBlocks, s.NotRemoteIpBlocks)
			merged.insertFront(srcNamespaceGenerator{}, config.AttrSrcNamespace, s.Namespaces, s.NotNamespaces)
			merged.insertFront(srcTrustDomainGenerator{}, config.AttrSrcTrustDomain, s.TrustDomains, s.NotTrustDomains)
			merged.insertFront(srcServiceAccountGenerator{policyNamespace: policyNS}, config.AttrSrcServiceAccount, s.ServiceAccounts, s.NotServiceAccounts)
			merged.insertFrontExtended(requestPrincipalGenerator{}, config.AttrRequestPrincipal, s.RequestPrincipals, s.NotRequestPrincipals)
			merged.insertFront(srcPrincipalGenerator{}, config.AttrSrcPrincipal, s.Principals, s.NotPrincipals)
		}
		m.principals = append(m.principals, merged)
	}
	if len(r.From) == 0 {
		m.principals = append(m.principals, basePrincipal)
	}
	for _, to := range r.To {
		merged := basePermission.copy()
		if o := to.Operation; o != nil {
			merged.insertFront(destPortGenerator{}, config.AttrDestPort, o.Ports, o.NotPorts)
			merged.insertFront(pathGenerator{}, pathKey, o.Paths, o.NotPaths)
			merged.insertFront(methodGenerator{}, methodHeader, o.Methods, o.NotMethods)
			merged.insertFront(hostGenerator{}, hostHeader, o.Hosts, o.NotHosts)
		}
		m.permissions = append(m.permissions, merged)
	}
	if len(r.To) == 0 {
		m.permissions = append(m.permissions, basePermission)
	}
	return &m, nil
}

// migrateTrustDomain adds the trust domain aliases to source principals
// and trust domains (Model.MigrateTrustDomain).
func (m *ruleModel) migrateTrustDomain(td trustDomainBundle) {
	for _, p := range m.principals {
		for i, r := range p.rules {
			switch r.key {
			case config.AttrSrcPrincipal:
				c := *r
				c.values, c.notValues = td.replaceAliases(r.values), td.replaceAliases(r.notValues)
				p.rules[i] = &c
			case config.AttrSrcTrustDomain:
				c := *r
				c.values, c.notValues = td.expandAliases(r.values), td.expandAliases(r.notValues)
				p.rules[i] = &c
			}
		}
	}
}

// generate is Model.Generate: the rule as one RBAC policy; an error when
// a generator refused a value in an ALLOW policy (the rule is dropped).
func (m *ruleModel) generate(forTCP, useAuthenticated bool, action rbacpb.RBAC_Action) (*rbacpb.Policy, error) {
	policy := &rbacpb.Policy{}
	for _, rl := range m.permissions {
		var and []*rbacpb.Permission
		for _, r := range rl.rules {
			ps, err := r.permission(forTCP, action)
			if err != nil {
				return nil, err
			}
			and = append(and, ps...)
		}
		if len(and) == 0 {
			and = append(and, permissionAny())
		}
		policy.Permissions = append(policy.Permissions, permissionAnd(and))
	}
	for _, rl := range m.principals {
		var and []*rbacpb.Principal
		for _, r := range rl.rules {
			ps, err := r.principal(forTCP, useAuthenticated, action)
			if err != nil {
				return nil, err
			}
			and = append(and, ps...)
		}
		if len(and) == 0 {
			and = append(and, principalAny())
		}
		policy.Principals = append(policy.Principals, principalAnd(and))
	}
	if len(policy.Permissions) == 0 || len(policy.Principals) == 0 {
		return nil, errors.New("must have at least 1 permission and 1 principal")
	}
	return policy, nil
}

// checkError: an ALLOW policy drops the whole rule on an error (a
// narrower allow); DENY and AUDIT drop only the value (a wider deny).
func checkError(action rbacpb.RBAC_Action, err error) error {
	if action == rbacpb.RBAC_ALLOW {
		return err
	}
	return nil
}

func (r *rule) permission(forTCP bool, action rbacpb.RBAC_Action) ([]*rbacpb.Permission, error) {
	var out []*rbacpb.Permission
	for i, values := range [][]string{r.values, r.notValues} {
		if len(values) == 0 {
			continue
		}
		var p *rbacpb.Permission
		if r.extended != nil {
			var err error
			if p, err = r.extended.extendedPermission(r.key, values, forTCP); checkError(action, err) != nil {
				return nil, err
			}
		} else {
			var or []*rbacpb.Permission
			for _, v := range values {
				one, err := r.g.permission(r.key, v, forTCP)
				if checkError(action, err) != nil {
					return nil, err
				}
				if one != nil {
					or = append(or, one)
				}
			}
			if len(or) > 0 {
				p = permissionOr(or)
			}
		}
		if p == nil {
			continue
		}
		if i == 1 {
			p = permissionNot(p)
		}
		out = append(out, p)
	}
	return out, nil
}

func (r *rule) principal(forTCP, useAuthenticated bool, action rbacpb.RBAC_Action) ([]*rbacpb.Principal, error) {
	var out []*rbacpb.Principal
	for i, values := range [][]string{r.values, r.notValues} {
		if len(values) == 0 {
			continue
		}
		var p *rbacpb.Principal
		if r.extended != nil {
			var err error
			if p, err = r.extended.extendedPrincipal(r.key, values, forTCP); checkError(action, err) != nil {
				return nil, err
			}
		} else {
			var or []*rbacpb.Principal
			for _, v := range values {
				one, err := r.g.principal(r.key, v, forTCP, useAuthenticated)
				if checkError(action, err) != nil {
					return nil, err
				}
				if one != nil {
					or = append(or, one)
				}
			}
			if len(or) > 0 {
				p = principalOr(or)
			}
		}
		if p == nil {
			continue
		}
		if i == 1 {
			p = principalNot(p)
		}
		out = append(out, p)
	}
	return out, nil
}
