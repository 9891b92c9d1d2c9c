package rbac

import (
	"strings"
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// TestHTTPFieldsNACK: each envoy.filters.http.rbac field the filter does
// not honour (matcher, shadow_matcher, track_per_rule_stats) is NACKed by
// name; the table is the proto, so a new field is covered.
func TestHTTPFieldsNACK(t *testing.T) {
	fs := (&rbachttp.RBAC{}).ProtoReflect().Descriptor().Fields()
	n := 0
	for i := range fs.Len() {
		fd := fs.Get(i)
		if httpFields[fd.Name()] {
			continue
		}
		n++
		m := &rbachttp.RBAC{}
		xdsfields.SetSomething(m.ProtoReflect(), fd)
		a, _ := anypb.New(m)
		_, err := factory{}.NewFilter(a)
		if err == nil || !strings.Contains(err.Error(), string(fd.Name())) {
			t.Errorf("%s: %v, want a NACK naming it", fd.Name(), err)
		}
	}
	if n < 3 {
		t.Errorf("only %d fields tried", n)
	}
}

// TestRulesNACK: whatever the engine does not implement, anywhere in a
// policy, is NACKed naming its place.
func TestRulesNACK(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"action: ALLOW\nauditLoggingOptions: {auditCondition: ON_DENY}", "audit_logging_options"},
		{"policies: {p: {permissions: [{any: true}], principals: [{any: true}], condition: {constExpr: {boolValue: true}}}}", `policies["p"].condition`},
		{`policies: {p: {permissions: [{matcher: {name: m, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/a"}}}], principals: [{any: true}]}}`, `policies["p"].permissions[0].matcher`},
		{"policies: {p: {permissions: [{sourcedMetadata: {metadataMatcher: {filter: f, path: [{key: k}], value: {presentMatch: true}}}}], principals: [{any: true}]}}", "sourced_metadata"},
		{"policies: {p: {permissions: [{any: true}], principals: [{filterState: {key: io.istio.peer_principal, stringMatch: {exact: x}}}]}}", `principals[0].filter_state`},
		{`policies: {p: {permissions: [{any: true}], principals: [{orIds: {ids: [{custom: {name: c, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/a"}}}]}}]}}`, `principals[0].or_ids[0].custom`},
		{"policies: {p: {permissions: [{any: true}], principals: [{notId: {sourcedMetadata: {metadataMatcher: {filter: f, path: [{key: k}], value: {presentMatch: true}}}}}]}}", "not_id.sourced_metadata"},
		{`policies: {p: {permissions: [{header: {name: x, stringMatch: {custom: {name: c, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/a"}}}}}], principals: [{any: true}]}}`, "header.string_match.custom"},
		{`policies: {p: {permissions: [{uriTemplate: {name: t, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/a/**/b/*"}}}], principals: [{any: true}]}}`, "glob after text glob"},
		{"policies: {p: {permissions: [{destinationPortRange: {start: 10, end: 5}}], principals: [{any: true}]}}", "destination_port_range"},
		{"policies: {p: {permissions: [{header: {name: ':status', presentMatch: true}}], principals: [{any: true}]}}", "pseudo-header"},
		{"policies: {p: {permissions: [{header: {name: x, safeRegexMatch: {regex: '('}}}], principals: [{any: true}]}}", "regex"},
	} {
		var r rbacpb.RBAC
		fromYAML(t, c.doc, &r)
		_, err := Compile(&r, "rules")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.doc, err, c.want)
		}
	}
}
