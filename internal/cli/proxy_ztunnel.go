package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
	"github.com/sluice-mesh/sluice/pkg/proxy/ztunnel"
)

// ztunnelType is the node proxy's --type (Istio's node ID type).
const ztunnelType = "ztunnel"

type ztunnelArgs struct {
	name, namespace, ip, admin, trustDomain string
	inpod                                   []string
	transparent                             bool
	certTTL                                 time.Duration
	cp                                      identity.ControlPlane
}

// ztunnelFlags are the proxy flags that mean something for a node proxy;
// any other given is refused rather than ignored.
var ztunnelFlags = map[string]bool{"type": true, "name": true, "namespace": true, "ip": true, "inpod": true,
	"transparent": true, "admin-address": true, "trust-domain": true, "cert-ttl": true, "xds-address": true,
	"token-file": true, "ca-root-file": true, "xds-tls": true, "log-level": true, "log-json": true}

// runZtunnel runs `sluice proxy --type ztunnel`.
func runZtunnel(cmd *cobra.Command, a ztunnelArgs) error {
	var bad error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !ztunnelFlags[f.Name] && bad == nil {
			bad = fmt.Errorf("--%s does not apply to --type ztunnel", f.Name)
		}
	})
	if bad != nil {
		return bad
	}
	if a.name == "" {
		return fmt.Errorf("--name is required (the node proxy's own pod name)")
	}
	pods, err := parseInpod(a.inpod)
	if err != nil {
		return err
	}
	log := newLogger(cmd)
	slog.SetDefault(log)
	return ztunnel.New(ztunnel.Options{
		// Its own service account as Istio's ztunnel announces it (env
		// SERVICE_ACCOUNT, the downward API's spec.serviceAccountName): the
		// control plane matches it to the token, and the node proxy asks
		// for other service accounts' certificates on their behalf.
		Identity: model.Proxy{Type: model.ProxyType(ztunnelType), Name: a.name, Namespace: a.namespace, IPs: []string{a.ip},
			ServiceAccount: os.Getenv("SERVICE_ACCOUNT")},
		XDSAddress:   a.cp.Address,
		ControlPlane: a.cp,
		TrustDomain:  a.trustDomain,
		CertTTL:      a.certTTL,
		Pods:         pods,
		Transparent:  a.transparent,
		AdminAddress: a.admin,
		Logger:       log,
	}).Run(cmd.Context())
}

// parseInpod reads NAMESPACE/NAME=NETNS values.
func parseInpod(values []string) ([]ztunnel.PodSpec, error) {
	var out []ztunnel.PodSpec
	for _, v := range values {
		pod, netns, ok := strings.Cut(v, "=")
		ns, name, ok2 := strings.Cut(pod, "/")
		if !ok || !ok2 || ns == "" || name == "" || netns == "" {
			return nil, fmt.Errorf("--inpod %q: want NAMESPACE/NAME=NETNS", v)
		}
		out = append(out, ztunnel.PodSpec{Namespace: ns, Name: name, Netns: netns})
	}
	return out, nil
}
