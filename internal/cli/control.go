package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

func init() { register(newControlCommand) }

func newControlCommand() *cobra.Command {
	var (
		configDir, meshConfig, xdsAddr, httpAddr, caDir, jwksCAFile string
		stateDir, tokenFile, kubeconfig                             string
		dash                                                        controlplane.DashboardOptions
		certTTL, maxCertTTL                                         time.Duration
		tls, vhds, gwDeploy, validationStatus                       bool
		injection                                                   controlplane.InjectionOptions
		trustedNodeAccounts                                         []string
	)
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane: read config, serve xDS to proxies",
		Long: `control reads Istio configuration and the service registry (ServiceEntry,
WorkloadEntry, Kubernetes Service) from a folder, from a Kubernetes API server
(--kubeconfig; in a pod, the in-cluster config), or both (the folder adds to the
cluster), watches them, compiles them into Envoy xDS v3 for each connected proxy
and serves it over ADS. See docs/kubernetes.md for what is read from a cluster.

Status:  GET /ready, /debug/status, /debug/syncz, /debug/configz,
         /debug/config_dump?proxy=<node id> on --http-address.
Dashboard: /dashboard/ on --http-address: the service graph, service and
         workload pages, config and proxies; its metrics from
         --prometheus-address, or scraped from the proxies' admin
         /stats/prometheus every --dashboard-scrape-interval.

Security: the CA signs a workload certificate only for a proxy that proves it
may hold the identity: the bootstrap token control writes (0600) to
<--state-dir>/bootstrap-token (any identity), or a token bound to one service
account from "sluice control token"; with a cluster, a pod's projected token,
and a node proxy's (--trusted-node-accounts) for the pods on its node. xDS
requires the same token. With
--xds-tls (on by default for a non-loopback --xds-address) the port serves TLS
with a certificate from the mesh CA; proxies verify it with
<--state-dir>/root-cert.pem. See docs/security.md.`,
		Example: `  sluice control --config-dir ./mesh
  sluice control --kubeconfig ~/.kube/config [--config-dir ./extra]
  sluice control --config-dir ./mesh --mesh-config mesh.yaml --xds-address 127.0.0.1:15010`,
		RunE: func(cmd *cobra.Command, args []string) error {
			kube, err := kubeRESTConfig(kubeconfig, configDir)
			if err != nil {
				return err
			}
			mesh, err := meshconfig.Load(meshConfig)
			if err != nil {
				return err
			}
			var jwksCA []byte
			if jwksCAFile != "" {
				if jwksCA, err = os.ReadFile(jwksCAFile); err != nil {
					return fmt.Errorf("--jwks-ca-file: %w", err)
				}
			}
			// An explicit flag or istiod's env wins over MeshConfig's
			// defaultConfig.proxyMetadata.SECRET_TTL (see controlplane).
			if !cmd.Flags().Changed("workload-cert-ttl") && os.Getenv("DEFAULT_WORKLOAD_CERT_TTL") == "" {
				certTTL = 0
			}
			// The injection webhook registers itself with the cluster: only in
			// a pod (the Service istiod[-rev] reaches it), or when told where
			// it listens or how the API server reaches it; a control plane
			// run from a laptop with --kubeconfig does not take over the
			// cluster's pod admission.
			if kube != nil && (os.Getenv("KUBERNETES_SERVICE_HOST") != "" ||
				cmd.Flags().Changed("injection-url") || cmd.Flags().Changed("injection-address")) {
				injection.Kube = kube
			}
			c, err := controlplane.New(controlplane.Options{
				ConfigDir: configDir, Kube: kube, Mesh: mesh, XDSAddress: xdsAddr, HTTPAddress: httpAddr, CADir: caDir, JwksCAPEM: jwksCA,
				Security: controlplane.SecurityOptions{WorkloadCertTTL: certTTL, MaxWorkloadCertTTL: maxCertTTL,
					StateDir: stateDir, BootstrapTokenFile: tokenFile, XDSTLS: xdsTLS(cmd, tls, xdsAddr),
					TrustedNodeAccounts: trustedNodeAccounts},
				Dashboard:                dash,
				DisableVHDS:              !vhds,
				Injection:                injection,
				Revision:                 injection.Revision,
				DisableGatewayDeployment: !gwDeploy,
				DisableValidationStatus:  !validationStatus,
				Logger:                   newLogger(cmd),
			})
			if err != nil {
				return err
			}
			return c.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	addInjectionFlags(f, &injection)
	f.StringVar(&configDir, "config-dir", "", "folder of YAML config and registry (required unless --kubeconfig or in a pod); with --kubeconfig it adds to the cluster's config, the cluster winning a resource both define")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the Kubernetes API server to read config, registry and MeshConfig (ConfigMap istio-system/istio) from; in a pod (KUBERNETES_SERVICE_HOST set) with neither this nor --config-dir, the in-cluster config")
	f.StringVar(&meshConfig, "mesh-config", "", "Istio MeshConfig YAML file")
	f.StringVar(&xdsAddr, "xds-address", "127.0.0.1:15010", "address to serve xDS (ADS) on")
	f.StringVar(&httpAddr, "http-address", "127.0.0.1:15014", "address to serve status and debug on")
	f.StringVar(&caDir, "ca-dir", "", "folder keeping the mesh CA's root certificate and key across restarts (default: a new root in memory); also Istio's plug-in cacerts files; watched for root rotation (sluice ca rotate)")
	f.StringVar(&stateDir, "state-dir", defaultStateDir(), "folder receiving bootstrap-token, token-signing-key (0600) and root-cert.pem (the trust bundle) for proxies")
	f.StringVar(&tokenFile, "bootstrap-token-file", "", "where to write the bootstrap token (default <state-dir>/bootstrap-token); kept across restarts")
	f.DurationVar(&certTTL, "workload-cert-ttl", envDuration("DEFAULT_WORKLOAD_CERT_TTL", ca.DefaultWorkloadTTL), "lifetime of a workload certificate whose request asks for none (env DEFAULT_WORKLOAD_CERT_TTL; else MeshConfig defaultConfig.proxyMetadata.SECRET_TTL)")
	f.DurationVar(&maxCertTTL, "max-workload-cert-ttl", envDuration("MAX_WORKLOAD_CERT_TTL", ca.MaxWorkloadTTL), "longest lifetime a proxy may ask for; longer requests are refused, as istiod does (env MAX_WORKLOAD_CERT_TTL)")
	f.StringSliceVar(&trustedNodeAccounts, "trusted-node-accounts", ca.TrustedNodeAccountsFromEnv(), "with a cluster, the service accounts (namespace/name) whose pods may get certificates for the pods on their own node, node proxies as ztunnel (env CA_TRUSTED_NODE_ACCOUNTS; \"\": none)")
	f.BoolVar(&tls, "xds-tls", false, "serve xDS and the CA over TLS with a certificate from the mesh CA (default: on when --xds-address is not loopback)")
	f.BoolVar(&vhds, "vhds", true, "send proxies on delta xDS each route configuration's virtual hosts as VHDS resources, so a change to one service's routes sends that virtual host only (SotW proxies always get whole route configurations)")
	f.StringVar(&jwksCAFile, "jwks-ca-file", "", "PEM CA certificates trusted, besides the system roots, for https jwksUris of RequestAuthentications")
	f.StringVar(&dash.PrometheusAddress, "prometheus-address", os.Getenv("SLUICE_PROMETHEUS_ADDRESS"), "Prometheus (http://host:port) the dashboard queries for Istio's metrics (env SLUICE_PROMETHEUS_ADDRESS; default: scrape the proxies)")
	f.DurationVar(&dash.ScrapeInterval, "dashboard-scrape-interval", 5*time.Second, "how often the dashboard scrapes the proxies' /stats/prometheus when there is no --prometheus-address")
	f.BoolVar(&gwDeploy, "gateway-deployment", envBool("PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER", true), "with a cluster, provision a ServiceAccount, Deployment (sluice proxy --type router) and Service for each Gateway of an Istio GatewayClass in this revision, as istiod's gateway deployment controller (env PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER)")
	f.BoolVar(&validationStatus, "validation-status", envBool("PILOT_ENABLE_ANALYSIS", true), "with a cluster, write config analysis messages into status.validationMessages of the Istio objects they are about, as istiod's --enableAnalysis (env PILOT_ENABLE_ANALYSIS; on by default in sluice, off in istiod)")
	addLogFlags(cmd)
	cmd.AddCommand(newTokenCommand())
	return cmd
}

// newTokenCommand is `sluice control token`: a token that gets one
// service account's identity only.
func newTokenCommand() *cobra.Command {
	var stateDir, ns, sa, out string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make a token that lets a proxy get one service account's identity only",
		Long: `token signs a token bound to --namespace/--service-account with the control
plane's key (<state-dir>/token-signing-key). A proxy started with
--token-file FILE holding it gets certificates for that identity only, and xDS
only as a proxy announcing it. Replacing the key file (then restarting
control) revokes every bound token.`,
		Example: `  sluice control token --namespace shop --service-account reviews --out reviews.token
  sluice proxy --namespace shop --service-account reviews --token-file reviews.token ...`,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := ca.MintBoundToken(ca.MintOptions{KeyFile: filepath.Join(stateDir, ca.FileTokenKey),
				Namespace: ns, ServiceAccount: sa, TTL: ttl})
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), tok)
				return nil
			}
			if err := os.WriteFile(out, []byte(tok+"\n"), 0o600); err != nil {
				return fmt.Errorf("token: %w", err)
			}
			return os.Chmod(out, 0o600)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state-dir", defaultStateDir(), "the control plane's --state-dir (holds token-signing-key)")
	f.StringVar(&ns, "namespace", "", "namespace of the identity (required)")
	f.StringVar(&sa, "service-account", "", "service account of the identity (required)")
	f.StringVar(&out, "out", "", "write the token to this file (0600) instead of stdout")
	f.DurationVar(&ttl, "ttl", 0, "token lifetime (default: no expiry)")
	cmd.MarkFlagRequired("namespace")
	cmd.MarkFlagRequired("service-account")
	return cmd
}

// kubeRESTConfig is the API server control reads from: --kubeconfig's,
// else the in-cluster one when running in a pod with no --config-dir,
// else none (nil).
func kubeRESTConfig(kubeconfig, configDir string) (*rest.Config, error) {
	switch {
	case kubeconfig != "":
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	case configDir == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
		return cfg, nil
	case configDir == "":
		return nil, errors.New("give --config-dir, --kubeconfig or both (or run in a pod for the in-cluster config)")
	}
	return nil, nil
}
