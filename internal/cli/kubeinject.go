package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

func init() { register(newKubeInjectCommand) }

func newKubeInjectCommand() *cobra.Command {
	var (
		file, out, namespace, meshFile string
		cfg                            inject.Config
	)
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE [-o OUT]",
		Short: "Add the sidecar to Kubernetes workloads offline (as istioctl kube-inject)",
		Long: `kube-inject applies the injection webhook's mutation to the pods and pod
templates (Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job, CronJob, DeploymentConfig, v1 List items) of a
YAML file and writes the result; other documents pass through unchanged.
As istioctl kube-inject, namespace labels are not consulted; a pod's
sidecar.istio.io/inject=false (label or annotation), hostNetwork pods and
pods already injected are left alone. -f - reads standard input.
--mesh-config (istioctl's --meshConfigFile) supplies meshConfig.defaultConfig,
whose concurrency a pod's proxy.istio.io/config annotation may override, and
the trust domain unless --trust-domain is given.`,
		Example: `  sluice kube-inject -f deployment.yaml | kubectl apply -f -
  sluice kube-inject -f bookinfo.yaml -o bookinfo-injected.yaml --revision canary`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			if file == "" {
				return fmt.Errorf("-f FILE is required (- for standard input)")
			}
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			if meshFile != "" {
				mesh, err := meshconfig.Load(meshFile)
				if err != nil {
					return err
				}
				cfg.ProxyConfig = mesh.GetDefaultConfig()
				if !cmd.Flags().Changed("trust-domain") {
					cfg.TrustDomain = mesh.GetTrustDomain()
				}
			}
			res, err := inject.InjectYAML(in, namespace, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(res)
				return err
			}
			return os.WriteFile(out, res, 0o644)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "input YAML (- for standard input)")
	f.StringVarP(&out, "output", "o", "", "output file (default standard output)")
	f.StringVarP(&namespace, "namespace", "n", "default", "namespace of objects that do not name one")
	f.StringVar(&cfg.Image, "image", inject.DefaultImage(), "the sluice image the sidecar runs")
	f.StringVar(&cfg.XDSAddress, "xds-address", inject.DefaultXDSAddress, "the control plane's xDS/CA address as pods reach it")
	f.StringVar(&cfg.TrustDomain, "trust-domain", meshconfig.DefaultTrustDomain, "the mesh's trust domain")
	f.StringVar(&meshFile, "mesh-config", "", "Istio MeshConfig YAML file (istioctl's --meshConfigFile): its defaultConfig.concurrency becomes the proxy's --concurrency, its trustDomain the trust domain unless --trust-domain is given")
	f.StringVar(&cfg.Revision, "revision", "", "control plane revision (istio.io/rev; empty: default)")
	f.BoolVar(&cfg.NativeSidecar, "native-sidecar", true, "run the proxy as a Kubernetes sidecar container (an init container with restartPolicy Always; Kubernetes 1.29+); false: a regular container")
	return cmd
}

// addInjectionFlags are sluice control's flags for the injection webhook
// it serves when it has a Kubernetes client.
func addInjectionFlags(f *pflag.FlagSet, o *controlplane.InjectionOptions) {
	f.StringVar(&o.Address, "injection-address", inject.DefaultWebhookAddress, "where the sidecar injection webhook listens (HTTPS, certificate from the mesh CA) when the control plane has a Kubernetes client")
	f.StringVar(&o.URL, "injection-url", "", "URL the API server calls the injection webhook at (a control plane outside the cluster; default: the Service istiod[-<revision>] in --injection-namespace, port 443, path /inject)")
	f.StringVar(&o.Namespace, "injection-namespace", "istio-system", "the control plane's namespace (its webhook Service's; the MutatingWebhookConfiguration is named as Istio's for it)")
	f.StringVar(&o.Revision, "revision", "", "control plane revision (istio.io/rev): injects namespaces and pods labelled with it; empty: the default revision, which also owns istio-injection=enabled")
	f.StringVar(&o.Image, "sidecar-image", inject.DefaultImage(), "the sluice image injected pods run")
	f.StringVar(&o.XDSAddress, "injection-xds-address", "", "the control plane's xDS/CA address as injected proxies and deployed gateways reach it (default: the Service istiod[-<revision>] in --injection-namespace, port 15012)")
}
