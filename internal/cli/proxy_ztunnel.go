package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluice-mesh/sluice/pkg/kube/nodeagent"
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
	kubeconfig, node, cniSocket             string
	cniConfDir, cniBinDir, cniDaemonSet     string
}

// ztunnelFlags are the proxy flags that mean something for a node proxy;
// any other given is refused rather than ignored.
var ztunnelFlags = map[string]bool{"type": true, "name": true, "namespace": true, "ip": true, "inpod": true,
	"transparent": true, "admin-address": true, "trust-domain": true, "cert-ttl": true, "xds-address": true,
	"token-file": true, "ca-root-file": true, "xds-tls": true, "log-level": true, "log-json": true,
	"kubeconfig": true, "node": true, "cni-socket": true,
	"cni-conf-dir": true, "cni-bin-dir": true, "cni-daemonset": true}

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
	cfg, err := nodeAgentConfig(a)
	if err != nil {
		return err
	}
	node := ztunnel.New(ztunnel.Options{
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
	})
	if cfg == nil {
		if a.cniSocket != "" || a.cniConfDir != "" {
			return fmt.Errorf("--cni-socket, --cni-conf-dir: the CNI plugin's events are the node agent's (--kubeconfig or in a pod)")
		}
		return node.Run(cmd.Context())
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	agent, err := nodeagent.New(nodeagent.Options{Client: client, Node: a.node,
		Dataplane: node, Self: types.NamespacedName{Namespace: a.namespace, Name: a.name}, CNISocket: a.cniSocket, CNIInstall: cniInstall(a), Logger: log.With("component", "node-agent")})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(cmd.Context())
	g.Go(func() error { return node.Run(ctx) })
	g.Go(func() error {
		select {
		case <-node.Running():
		case <-ctx.Done():
			return nil
		}
		return agent.Run(ctx)
	})
	return g.Wait()
}

// cniInstall is where the node agent chains the CNI plugin (nil: it
// does not).
func cniInstall(a ztunnelArgs) *nodeagent.CNIInstall {
	if a.cniConfDir == "" {
		return nil
	}
	return &nodeagent.CNIInstall{ConfDir: a.cniConfDir, BinDir: a.cniBinDir, DaemonSetNamespace: a.namespace,
		DaemonSet: a.cniDaemonSet,
		// As istio-cni's: the system's pods and the mesh's own start
		// whether or not an agent answers.
		ExcludeNamespaces: []string{"kube-system", a.namespace}}
}

// nodeAgentConfig is the API server the node agent watches: --kubeconfig's,
// else the in-cluster one in a pod with no --inpod, else none (the node
// proxy serves the --inpod pods only).
func nodeAgentConfig(a ztunnelArgs) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	switch {
	case a.kubeconfig != "":
		if cfg, err = clientcmd.BuildConfigFromFlags("", a.kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", a.kubeconfig, err)
		}
	case len(a.inpod) == 0 && os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
	case a.node != "" && len(a.inpod) == 0:
		return nil, fmt.Errorf("--node %s: give --kubeconfig (or run in a pod) for the node agent", a.node)
	default:
		return nil, nil
	}
	if a.node == "" {
		return nil, fmt.Errorf("the node agent needs --node (or env NODE_NAME)")
	}
	return cfg, nil
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
