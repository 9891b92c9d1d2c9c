package dataplane

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// gatewayTLS turns an Istio Gateway server's tls block into the chain's
// compiled TLS as the whole path does it: YAML, validation, xDS
// generation (ValidateAll), the proxy's compile.
func gatewayTLS(t *testing.T, f *tlsFixture, tlsBlock string, crl []byte) *ServerTLS {
	t.Helper()
	data := map[string]any{"tls.crt": string(f.srvCert), "tls.key": string(f.srvKey), "ca.crt": string(f.ca.CertPEM)}
	if crl != nil {
		data["ca.crl"] = string(crl)
	}
	yaml := testenv.MustYAML(map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata": map[string]any{"name": "gw-cred", "namespace": "istio-system"}, "stringData": data}) + `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["gw.example.com"]
    tls: ` + tlsBlock + "\n"
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "gw.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatal(dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := append(config.Validate(r), config.Unsupported(r)...); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	push := model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
	p := &model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}}
	p.ID = p.NodeID()
	res, err := xdsgen.Generate(push, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) > 0 {
		t.Fatal(res.Conflicts)
	}
	if err := xdsgen.Validate(res); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	items := map[string]map[string]proto.Message{xdsclient.ListenerType: {}, xdsclient.RouteType: {}, xdsclient.ClusterType: {}, xdsclient.EndpointType: {}}
	for _, l := range res.Listeners {
		items[xdsclient.ListenerType][l.Name] = l
	}
	rt, _, err := Compile(CompileOptions{Resources: xdsclient.Resources{Items: items, Versions: map[string]string{}}})
	if err != nil {
		t.Fatalf("the proxy rejects what the control plane generates: %v", err)
	}
	for _, l := range rt.Listeners {
		for _, c := range l.Chains {
			if c.TLS != nil {
				return c.TLS
			}
		}
	}
	t.Fatal("no TLS chain generated")
	return nil
}

// Gateway server tls fields from Istio YAML to a real handshake:
// OPTIONAL_MUTUAL, MUTUAL, subjectAltNames, verifyCertificateSpki,
// verifyCertificateHash and the Secret's ca.crl.
func TestGatewayServerTLSFromYAML(t *testing.T) {
	f := newTLSFixture(t)
	spki := sha256.Sum256(f.goodLeaf.RawSubjectPublicKeyInfo)
	hash := sha256.Sum256(f.goodLeaf.Raw)
	cases := []struct {
		name, tls string
		crl       []byte
		tries     map[string]bool // client -> handshake succeeds
	}{
		{"OPTIONAL_MUTUAL", `{mode: OPTIONAL_MUTUAL, credentialName: gw-cred}`, nil,
			map[string]bool{"none": true, "good": true, "foreign": false}},
		{"MUTUAL", `{mode: MUTUAL, credentialName: gw-cred}`, nil,
			map[string]bool{"none": false, "good": true, "foreign": false}},
		{"SIMPLE", `{mode: SIMPLE, credentialName: gw-cred}`, nil,
			map[string]bool{"none": true, "foreign": true}},
		{"subjectAltNames", `{mode: MUTUAL, credentialName: gw-cred, subjectAltNames: [good.example.com]}`, nil,
			map[string]bool{"good": true, "bad": false}},
		{"verifyCertificateSpki", fmt.Sprintf(`{mode: OPTIONAL_MUTUAL, credentialName: gw-cred, verifyCertificateSpki: [%q]}`, base64.StdEncoding.EncodeToString(spki[:])), nil,
			map[string]bool{"none": true, "good": true, "bad": false}},
		{"verifyCertificateHash", fmt.Sprintf(`{mode: MUTUAL, credentialName: gw-cred, verifyCertificateHash: [%q]}`, fmt.Sprintf("%x", hash[:])), nil,
			map[string]bool{"good": true, "bad": false}},
		{"ca.crl of the Secret", `{mode: MUTUAL, credentialName: gw-cred}`, f.ca.CRL(t, f.badPEM),
			map[string]bool{"good": true, "bad": false}},
	}
	clients := map[string]*tls.Certificate{"none": nil, "good": &f.good, "bad": &f.bad, "foreign": &f.foreign}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := gatewayTLS(t, f, tc.tls, tc.crl)
			for who, ok := range tc.tries {
				if err := handshake(t, st, f.ca.Pool, clients[who]); (err == nil) != ok {
					t.Errorf("client %s: handshake error %v, want success %v", who, err, ok)
				}
			}
		})
	}
}
