package analysis

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/gateway/secret.go.
func init() {
	register(&Analyzer{
		Name:        "gateway.SecretAnalyzer",
		Workloads:   true,
		Description: "Checks a gateway's referenced secrets for correctness",
		Codes:       []string{"IST0101", "IST0161"},
		run: func(c *Context) {
			for _, o := range c.Objects(config.KindGateway) {
				gatewaySecrets(c, o)
			}
		},
	})
}

// gatewaySecrets checks each server's credentialName: the Secret must
// exist in the namespace of the gateway's pods and hold a certificate that
// is valid now.
func gatewaySecrets(c *Context, o *Object) {
	gw := o.Spec.(*networking.Gateway)
	ns := ""
	for _, pod := range c.Objects(KindPod) {
		if selects(gw.Selector, pod.Labels) {
			ns = pod.Namespace
			break
		}
	}
	if ns == "" {
		sel := selectorString(gw.Selector)
		c.report(ReferencedResourceNotFound, o, fmt.Sprintf(pathGatewaySelector, selectorLabel(sel)), "selector", sel)
		return
	}
	for i, srv := range gw.GetServers() {
		cn := srv.GetTls().GetCredentialName()
		if cn == "" {
			continue
		}
		path := fmt.Sprintf(pathCredentialName, i)
		secretNS, name := ns, cn
		if n, rest, ok := strings.Cut(cn, "/"); ok {
			secretNS, name = n, rest
		}
		secret := c.Find(config.KindSecret, secretNS, name)
		if secret == nil {
			c.report(ReferencedResourceNotFound, o, path, "credentialName", cn)
			continue
		}
		if !validGatewaySecret(secret.Spec.(*config.Secret)) {
			c.report(InvalidGatewayCredential, o, path, o.Name, ns)
		}
	}
}

// validGatewaySecret is isValidSecret: the certificate and key
// (pilot/pkg/credentials/kube ExtractCertInfo) and a certificate that
// parses and is valid now (pilot/pkg/xds ValidateCertificate).
func validGatewaySecret(s *config.Secret) bool {
	cert, err := secretCert(s.Data)
	if err != nil {
		return false
	}
	block, _ := pem.Decode(cert)
	if block == nil {
		return false
	}
	certs, err := x509.ParseCertificates(block.Bytes)
	if err != nil {
		return false
	}
	now := time.Now()
	for _, c := range certs {
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			return false
		}
	}
	return true
}

func secretCert(d map[string][]byte) ([]byte, error) {
	if len(d["cert"]) > 0 && len(d["key"]) > 0 {
		return d["cert"], nil
	}
	if len(d["tls.crt"]) > 0 && len(d["tls.key"]) > 0 {
		return d["tls.crt"], nil
	}
	return nil, errors.New("no certificate and key")
}
