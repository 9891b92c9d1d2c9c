package jwtauthn

import (
	"strings"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// TestNACKUnsupportedFields sets, one at a time, every field of the
// config's messages that the filter does not honour (from the message
// descriptors, so a field added to go-control-plane is covered) and
// expects the config rejected with the field named.
func TestNACKUnsupportedFields(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	base := func() *jwtv3.JwtAuthentication {
		c := istioConfig(istioProvider(iss, jwks(t, key.jwk())))
		c.Providers["origins-0"].FromHeaders = []*jwtv3.JwtHeader{{Name: "a"}}
		c.Providers["origins-0"].ClaimToHeaders = []*jwtv3.JwtClaimToHeader{{HeaderName: "x-a", ClaimName: "a"}}
		return c
	}
	if _, err := (factory{}).NewFilter(mustAny(t, base())); err != nil {
		t.Fatalf("base config rejected: %v", err)
	}
	// Where each message sits in the base config.
	targets := map[protoreflect.FullName]func(c *jwtv3.JwtAuthentication) proto.Message{
		name(&jwtv3.JwtAuthentication{}): func(c *jwtv3.JwtAuthentication) proto.Message { return c },
		name(&jwtv3.JwtProvider{}):       func(c *jwtv3.JwtAuthentication) proto.Message { return c.Providers["origins-0"] },
		name(&jwtv3.JwtHeader{}):         func(c *jwtv3.JwtAuthentication) proto.Message { return c.Providers["origins-0"].FromHeaders[0] },
		name(&jwtv3.JwtClaimToHeader{}):  func(c *jwtv3.JwtAuthentication) proto.Message { return c.Providers["origins-0"].ClaimToHeaders[0] },
		name(&jwtv3.JwtProvider_NormalizePayload{}): func(c *jwtv3.JwtAuthentication) proto.Message {
			return c.Providers["origins-0"].NormalizePayloadInMetadata
		},
		name(&jwtv3.RequirementRule{}):      func(c *jwtv3.JwtAuthentication) proto.Message { return c.Rules[0] },
		name(&route.RouteMatch{}):           func(c *jwtv3.JwtAuthentication) proto.Message { return c.Rules[0].Match },
		name(&jwtv3.JwtRequirement{}):       func(c *jwtv3.JwtAuthentication) proto.Message { return c.Rules[0].GetRequires() },
		name(&jwtv3.JwtRequirementOrList{}): func(c *jwtv3.JwtAuthentication) proto.Message { return c.Rules[0].GetRequires().GetRequiresAny() },
	}
	n := 0
	for msgName, get := range targets {
		honoured := fields[msgName]
		fds := get(base()).ProtoReflect().Descriptor().Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			if honoured[fd.Name()] {
				continue
			}
			c := base()
			xdsfields.SetSomething(get(c).ProtoReflect(), fd)
			_, err := (factory{}).NewFilter(mustAny(t, c))
			if err == nil || !strings.Contains(err.Error(), string(fd.Name())) {
				t.Errorf("%s.%s set: %v", msgName, fd.Name(), err)
			}
			n++
		}
	}
	if n < 20 {
		t.Fatalf("only %d unsupported fields tried", n)
	}
}

func TestNACKReasons(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	c := istioConfig(istioProvider(iss, jwks(t, key.jwk())))
	c.Providers["origins-0"].JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{}}
	_, err := (factory{}).NewFilter(mustAny(t, c))
	if err == nil || !strings.Contains(err.Error(), `providers["origins-0"].remote_jwks: not supported`) {
		t.Errorf("remote_jwks: %v", err)
	}
	c = istioConfig(istioProvider(iss, jwks(t, key.jwk())))
	c.Rules[0] = prefixRule("/", providerReq("nope"))
	if _, err := (factory{}).NewFilter(mustAny(t, c)); err == nil || !strings.Contains(err.Error(), "Required provider ['nope'] is not configured.") {
		t.Errorf("unknown provider: %v", err)
	}
	if _, err := (factory{}).NewFilter(nil); err == nil {
		t.Error("no typed_config accepted")
	}
	// A per-route config is not honoured.
	a, _ := anypb.New(&jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_Disabled{Disabled: true}})
	_, err = (factory{}).CompilePerRoute(&httpfilter.PerRouteInput{
		Route:       &route.Route{TypedPerFilterConfig: map[string]*anypb.Any{Name: a}},
		VirtualHost: &route.VirtualHost{}})
	if err == nil || !strings.Contains(err.Error(), "PerRouteConfig") {
		t.Errorf("per-route config: %v", err)
	}
	// Not a JwtAuthentication.
	s, _ := anypb.New(&structpb.Struct{})
	if _, err := (factory{}).NewFilter(s); err == nil {
		t.Error("a Struct was accepted")
	}
}
