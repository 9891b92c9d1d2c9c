package security

import (
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/jwks"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

const fetchedKeys = `{"keys":[{"kty":"oct","kid":"k","k":"AAAA"}]}`

// jwtPush decodes doc and builds a push context whose JWKS come from a
// real resolver.
func jwtPush(t *testing.T, doc string, resolver *jwks.Resolver) *model.PushContext {
	t.Helper()
	res := config.Decode([]byte(doc), config.DecodeOptions{File: "ra.yaml"})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	for _, r := range res.Resources {
		if errs := append(config.Validate(r), config.Unsupported(r)...); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	return model.NewPushContext(model.PushOptions{Mesh: meshconfig.Default(), Resources: res.Resources, Jwks: resolver})
}

func providerReq(name string) *jwtpb.JwtRequirement {
	return &jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_ProviderName{ProviderName: name}}
}

func allowMissing() *jwtpb.JwtRequirement {
	return &jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}
}

func anyOf(rs ...*jwtpb.JwtRequirement) *jwtpb.JwtRequirement {
	return &jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_RequiresAny{RequiresAny: &jwtpb.JwtRequirementOrList{Requirements: rs}}}
}

func inlineProvider(issuer, keys string) *jwtpb.JwtProvider {
	return &jwtpb.JwtProvider{
		Issuer:              issuer,
		JwksSourceSpecifier: &jwtpb.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: keys}}},
		PayloadInMetadata:   "payload",
		NormalizePayloadInMetadata: &jwtpb.JwtProvider_NormalizePayload{
			SpaceDelimitedClaims: []string{"permission", "scope"},
		},
	}
}

// TestJwtConfigMultipleRules is Istio's TestConvertToEnvoyJwtConfig
// "Multiple JWT rule" through the policy applier (rules sorted by issuer,
// so secret.bar.com is origins-0), the jwksUri fetched by the control
// plane's resolver from a real HTTPS server.
func TestJwtConfigMultipleRules(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, fetchedKeys) }))
	defer srv.Close()
	resolver, err := jwks.New(jwks.Options{Logger: slog.New(slog.DiscardHandler),
		ExtraRootsPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})})
	if err != nil {
		t.Fatal(err)
	}
	push := jwtPush(t, `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - {issuer: "https://secret.foo.com", jwksUri: "`+srv.URL+`/oauth2/v3/certs"}
  - {issuer: "https://secret.bar.com", jwks: '{"keys":[]}'}
`, resolver)
	got, notes := jwtConfig(push, push.RequestAuthenticationsFor(model.PolicyMatcher{Namespace: "foo"}), false)
	if len(notes) != 0 {
		t.Errorf("notes %v", notes)
	}
	want := &jwtpb.JwtAuthentication{
		Rules: []*jwtpb.RequirementRule{{
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtpb.RequirementRule_Requires{Requires: anyOf(providerReq("origins-0"), providerReq("origins-1"),
				&jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_RequiresAll{RequiresAll: &jwtpb.JwtRequirementAndList{
					Requirements: []*jwtpb.JwtRequirement{anyOf(providerReq("origins-0"), allowMissing()), anyOf(providerReq("origins-1"), allowMissing())}}}})},
		}},
		Providers: map[string]*jwtpb.JwtProvider{
			"origins-0": inlineProvider("https://secret.bar.com", `{"keys":[]}`),
			"origins-1": inlineProvider("https://secret.foo.com", fetchedKeys),
		},
		BypassCorsPreflight: true,
	}
	compare(t, "multiple JWT rules", got, want)
}

// TestJwtConfigFields: every JWTRule field lands where Istio puts it;
// a single rule is OR{provider, allow_missing}; gateways clear the route
// cache; an unreachable jwksUri inlines the public-only JWKS.
func TestJwtConfigFields(t *testing.T) {
	resolver, err := jwks.New(jwks.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	push := jwtPush(t, `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules:
  - issuer: https://down.example
    jwksUri: http://127.0.0.1:1/keys
    audiences: [a1, a2]
    fromHeaders: [{name: x-token, prefix: "Bearer "}]
    fromParams: [access_token]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
    spaceDelimitedClaims: [roles, scope]
    timeout: 1s
`, resolver)
	f, err := HTTPFilters(push, Workload{Namespace: "foo", Gateway: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.HTTP) != 1 || f.HTTP[0].Name != JwtFilterName {
		t.Fatalf("filters %v", f.HTTP)
	}
	if len(f.Notes) != 1 || !strings.Contains(f.Notes[0], "https://down.example") {
		t.Errorf("notes %v", f.Notes)
	}
	got := &jwtpb.JwtAuthentication{}
	if err := f.HTTP[0].GetTypedConfig().UnmarshalTo(got); err != nil {
		t.Fatal(err)
	}
	p := inlineProvider("https://down.example", model.PublicOnlyJwks)
	p.Audiences = []string{"a1", "a2"}
	p.FromHeaders = []*jwtpb.JwtHeader{{Name: "x-token", ValuePrefix: "Bearer "}}
	p.FromParams, p.FromCookies = []string{"access_token"}, []string{"session"}
	p.Forward, p.ForwardPayloadHeader = true, "x-jwt-payload"
	p.ClaimToHeaders = []*jwtpb.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}}
	p.NormalizePayloadInMetadata.SpaceDelimitedClaims = []string{"permission", "roles", "scope"}
	p.ClearRouteCache = true
	want := &jwtpb.JwtAuthentication{
		Rules: []*jwtpb.RequirementRule{{
			Match:           &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtpb.RequirementRule_Requires{Requires: anyOf(providerReq("origins-0"), allowMissing())},
		}},
		Providers:           map[string]*jwtpb.JwtProvider{"origins-0": p},
		BypassCorsPreflight: true,
	}
	compare(t, "JWT rule fields", got, want)
}
