package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

func init() { register(newProxyCommand) }

func newProxyCommand() *cobra.Command {
	var (
		typ, name, namespace, labels, ip, locality string
		xdsAddr, outbound, admin                   string
		bind, tcpIP, hostsFile, sa, trustDomain    string
		inbound, app                               []string
		portOffset                                 int
		tokenFile, rootFile, metricsAddr           string
		certTTL                                    time.Duration
		tls                                        bool
		authzExplain                               bool
		xdsProtocol                                string
		xdsMaxMessageBytes                         int
		agentAddr, appProbers                      string
		interception                               string
		concurrency, gcPercent                     int
		inpod                                      []string
		transparent                                bool
		kubeconfig, node, cniSocket                string
		cniConfDir, cniBinDir, cniDaemonSet        string
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a proxy: sidecar beside an app, or router (gateway)",
		Long: `proxy connects to the control plane over xDS, announces who it is (name,
namespace, labels, IP, type) and serves the listeners it is given.

A sidecar takes the app's outbound HTTP on --outbound-address: the app sends
plain HTTP with the destination in Host ("reviews", "reviews:9080", the FQDN)
or as an absolute URI (HTTP_PROXY style). Mesh traffic for the app arrives on
--inbound-address and goes to --app-address. A workload with several ports
repeats the pair, once per port (paired by order): one sidecar serves them
all, each with the protocol of the service port whose endpoint is that
inbound address. A Sidecar resource's ingress listener for a port replaces
that port's --app-address with its defaultEndpoint.

A router (gateway) serves the listeners of the Istio Gateways whose selector
matches its --labels (e.g. istio=ingressgateway), each Gateway port P on
P+--port-offset at --bind-address.

Identity: the proxy gets its workload certificate from the control plane's CA
with the token in --token-file (the bootstrap token "sluice control" writes, or
one from "sluice control token"), renews it at half life with jitter, and
trusts every root of the mesh's trust bundle.

xDS: Delta (incremental) ADS by default, falling back to state of the world
ADS when the control plane does not implement Delta (--xds-protocol).

Admin: GET /ready /config_dump /stats /clusters /listeners /certs /debug/authz
on --admin-address.

Agent (--agent-address, istio-agent's :15020 on Kubernetes): /healthz/ready
and the app probes the injector rewrote (--app-probers, env
ISTIO_KUBE_APP_PROBERS), run against the app at --ip.`,
		Example: `  sluice proxy --type sidecar --name reviews-v1 --namespace default \
    --labels app=reviews,version=v1 \
    --inbound-address 127.0.0.1:20001 --app-address 127.0.0.1:30001 \
    --outbound-address 127.0.0.1:15001 --admin-address 127.0.0.1:15000

  # one sidecar for a workload with an HTTP port and a TCP port
  sluice proxy --name db-0 --labels app=db \
    --inbound-address 127.0.0.1:20001 --app-address 127.0.0.1:30001 \
    --inbound-address 127.0.0.1:20002 --app-address 127.0.0.1:30002`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if typ == ztunnelType {
				cp := identity.ControlPlane{Address: xdsAddr, TokenFile: tokenFile, TLS: xdsTLS(cmd, tls, xdsAddr), RootFile: rootFile}
				return runZtunnel(cmd, ztunnelArgs{name: name, namespace: namespace, ip: ip, inpod: inpod,
					transparent: transparent, admin: admin, trustDomain: trustDomain, certTTL: certTTL, cp: cp,
					kubeconfig: kubeconfig, node: node, cniSocket: cniSocket,
					cniConfDir: cniConfDir, cniBinDir: cniBinDir, cniDaemonSet: cniDaemonSet})
			}
			if typ != string(model.Sidecar) && typ != string(model.Router) {
				return fmt.Errorf("--type %q: must be sidecar, router or ztunnel", typ)
			}
			if len(inpod) > 0 || cmd.Flags().Changed("transparent") || cmd.Flags().Changed("kubeconfig") || cmd.Flags().Changed("node") ||
				cniSocket != "" || cniConfDir != "" {
				return fmt.Errorf("--inpod, --transparent, --kubeconfig, --node and --cni-socket are for --type ztunnel")
			}
			if name == "" {
				return fmt.Errorf("--name is required")
			}
			lbls, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ports, err := inboundPorts(inbound, app)
			if err != nil {
				return err
			}
			if typ == string(model.Router) {
				outbound = ""
			}
			mode, err := interceptionMode(cmd, interception, typ, tcpIP)
			if err != nil {
				return err
			}
			if mode == model.InterceptionRedirect {
				outbound = "" // outbound traffic arrives through the capture
			}
			protocol, err := xdsclient.ParseProtocol(xdsProtocol)
			if err != nil {
				return fmt.Errorf("--xds-protocol: %w", err)
			}
			if xdsMaxMessageBytes <= 0 {
				return fmt.Errorf("--xds-max-message-bytes %d: must be positive", xdsMaxMessageBytes)
			}
			if portOffset < 0 || portOffset > 65535 {
				return fmt.Errorf("--port-offset %d: must be 0..65535", portOffset)
			}
			procs, err := proxyConcurrency(cmd, concurrency)
			if err != nil {
				return err
			}
			runtime.GOMAXPROCS(procs)
			if err := applyGCPercent(cmd, gcPercent); err != nil {
				return err
			}
			id := model.Proxy{
				Type: model.ProxyType(typ), Name: name, Namespace: namespace, Labels: lbls,
				IPs: []string{ip}, Locality: locality,
				OutboundAddress: outbound, Inbound: ports,
				PortOffset: portOffset, BindAddress: bind, OutboundTCPIP: tcpIP, ServiceAccount: sa,
				InterceptionMode: mode,
			}
			var hosts *upstream.Hosts
			if hostsFile != "" {
				if hosts, err = upstream.LoadHosts(hostsFile); err != nil {
					return err
				}
			}
			cp := identity.ControlPlane{Address: xdsAddr, TokenFile: tokenFile, TLS: xdsTLS(cmd, tls, xdsAddr), RootFile: rootFile}
			log := newLogger(cmd)
			// Filters (jwt_authn, rbac) log through slog's default, so
			// their lines honour --log-level and --log-json too.
			slog.SetDefault(log)
			if _, err := os.Stat(tokenFile); err != nil {
				// The control plane may be starting; the token is read at every call.
				log.Warn("no token yet; the control plane will refuse this proxy until there is one", "err", err, "fix", ca.TokenFix)
			}
			return proxy.New(proxy.Options{
				Identity: id, XDSAddress: xdsAddr, AdminAddress: admin, Hosts: hosts, TrustDomain: trustDomain,
				ControlPlane: cp, CertTTL: certTTL, Logger: log, AuthzExplainHeader: authzExplain,
				MetricsAddress: metricsAddr, XDSProtocol: protocol, XDSMaxMessageBytes: xdsMaxMessageBytes,
				AgentAddress: agentAddr, AppProbers: appProbers,
			}).Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "sidecar", "proxy type: sidecar, router or ztunnel (the node proxy of ambient mode)")
	f.StringArrayVar(&inpod, "inpod", nil, "ztunnel: a pod whose traffic the node proxy carries, NAMESPACE/NAME=NETNS (its network namespace's path, captured with sluice capture --ambient); repeat per pod")
	f.StringVar(&kubeconfig, "kubeconfig", "", "ztunnel: run the node agent (istio-cni's) against this API server: capture and serve the ambient pods of --node (in a pod without --inpod: the in-cluster config)")
	f.StringVar(&cniSocket, "cni-socket", "", "ztunnel: answer the CNI plugin (sluice cni install) on this unix socket, so ambient pods are captured as their sandbox is set up, before their containers start (needs the node agent)")
	f.StringVar(&cniConfDir, "cni-conf-dir", "", "ztunnel: chain the CNI plugin into the node's network configuration in this directory at start (the node's /etc/cni/net.d as mounted), and unchain it at exit when --cni-daemonset is gone (istio-cni's install); needs --cni-socket")
	f.StringVar(&cniBinDir, "cni-bin-dir", "/opt/cni/bin", "ztunnel: the node's CNI bin directory (as mounted) the plugin binary goes to, with --cni-conf-dir")
	f.StringVar(&cniDaemonSet, "cni-daemonset", "ztunnel", "ztunnel: the node proxy's DaemonSet (in --namespace): present at exit, the plugin stays chained (an upgrade or reboot); gone, it is unchained")
	f.StringVar(&node, "node", os.Getenv("NODE_NAME"), "ztunnel: the node whose pods the node agent captures (default env NODE_NAME)")
	f.BoolVar(&transparent, "transparent", true, "ztunnel: connect to a pod's app from the client's address (IP_TRANSPARENT, as ztunnel), not the pod's own")
	f.StringVar(&name, "name", "", "workload (pod) name")
	f.StringVar(&namespace, "namespace", "default", "workload namespace")
	f.StringVar(&labels, "labels", "", "workload labels, k=v,k=v")
	f.StringVar(&ip, "ip", proxy.DefaultWorkloadIP, "workload IP; a sidecar's upstream connections leave from it when set")
	f.StringVar(&locality, "locality", "", "proxy locality region/zone/subzone")
	f.StringVar(&xdsAddr, "xds-address", "127.0.0.1:15010", "control plane xDS address")
	f.StringVar(&outbound, "outbound-address", "127.0.0.1:15001", "where the app sends outbound traffic (sidecar)")
	f.StringArrayVar(&inbound, "inbound-address", nil, "where mesh traffic for the app arrives (sidecar); repeat once per workload port, paired by order with --app-address")
	f.StringArrayVar(&app, "app-address", nil, "where the app listens (sidecar): host:port or unix:///path; repeat once per --inbound-address")
	f.StringVar(&admin, "admin-address", "127.0.0.1:15000", "admin endpoint address")
	f.IntVar(&portOffset, "port-offset", 0, "router: serve every Gateway port P on P+N (no root needed for 80/443); sidecar: the same for outbound TCP ports")
	f.StringVar(&bind, "bind-address", "", "router: IP to bind Gateway listeners to (default all)")
	f.StringVar(&sa, "service-account", "default", "the workload's service account: its identity is spiffe://<trust domain>/ns/<namespace>/sa/<service account>")
	f.StringVar(&trustDomain, "trust-domain", meshconfig.DefaultTrustDomain, "the mesh's SPIFFE trust domain (meshConfig.trustDomain)")
	f.StringVar(&hostsFile, "hosts-file", "", "names to resolve before DNS, /etc/hosts format (stand-ins for external hosts in a local mesh)")
	f.StringVar(&tcpIP, "outbound-tcp-ip", "", "sidecar: serve each TCP/TLS service port P at IP:P+--port-offset (how an app reaches TCP services without iptables)")
	f.StringVar(&tokenFile, "token-file", filepath.Join(defaultStateDir(), ca.FileBootstrapToken), "token proving the proxy may hold its identity, sent to the control plane as authorization: Bearer (sluice control writes the bootstrap token there; see sluice control token)")
	f.StringVar(&rootFile, "ca-root-file", filepath.Join(defaultStateDir(), ca.FileRootCert), "trust bundle (PEM) to verify the control plane's TLS certificate with (written by sluice control)")
	f.StringVar(&xdsProtocol, "xds-protocol", string(xdsclient.ProtocolAuto), "xDS variant: delta (incremental ADS), sotw (state of the world ADS) or auto (delta, and sotw for the rest of the process's life if the control plane does not implement delta)")
	f.IntVar(&xdsMaxMessageBytes, "xds-max-message-bytes", xdsclient.DefaultMaxMessageBytes, "largest xDS response accepted from the control plane, in bytes")
	f.BoolVar(&tls, "xds-tls", false, "connect to the control plane over TLS (default: on when --xds-address is not loopback)")
	f.DurationVar(&certTTL, "cert-ttl", envDuration("SECRET_TTL", 0), "workload certificate lifetime to ask for (env SECRET_TTL; default: the control plane's --workload-cert-ttl)")
	f.StringVar(&metricsAddr, "metrics-address", "", "also serve Istio's standard metrics at <address>/stats/prometheus (Istio's :15090; off by default in local mode, where many proxies share one machine; always on the admin endpoint's /stats/prometheus)")
	f.BoolVar(&authzExplain, "authz-explain-header", false, "name the deciding authorization policy (or \"no ALLOW policy matched\") in an X-Sluice-Authz header of each request the proxy denies (off: policy names stay private; /debug/authz, /stats and the log explain every decision regardless)")
	f.StringVar(&agentAddr, "agent-address", "", "serve the agent port (istio-agent's :15020): /healthz/ready and the app probes sluice kube-inject and the injection webhook rewrite to /app-health/<container>/livez|readyz|startupz (off by default in local mode, where many proxies share one machine; the injected sidecar sets 0.0.0.0:15020)")
	f.StringVar(&appProbers, "app-probers", os.Getenv("ISTIO_KUBE_APP_PROBERS"), "the app's original probes by agent path, JSON as the injector writes it (env ISTIO_KUBE_APP_PROBERS); needs --agent-address")
	f.StringVar(&interception, "interception-mode", string(model.InterceptionNone), "sidecar: how traffic reaches the proxy, Istio's interception mode: NONE (local mode: the app addresses --outbound-address) or REDIRECT (iptables capture, see sluice capture: Istio's virtual outbound listener on :15001 and virtual inbound on :15006, routing by the destination address the app connected to)")
	f.IntVar(&concurrency, "concurrency", DefaultConcurrency, "worker threads, as Envoy's --concurrency and Istio's ProxyConfig.concurrency: the proxy runs on at most N cores (GOMAXPROCS); 0 = every core. Unset, an explicit GOMAXPROCS in the environment or a CPU limit below 2 cores wins")
	f.IntVar(&gcPercent, "gc-percent", DefaultGCPercent, "the proxy's memory policy: how far its heap grows past what is live before the garbage collector runs, in percent (Go's GOGC). Not given, an explicit GOGC in the environment wins")
	addLogFlags(cmd)
	return cmd
}

// DefaultGCPercent is the proxies' GOGC. A proxy's live heap is small
// (its config, a few MiB), so collecting at 1.75x instead of Go's 2x
// costs little CPU and keeps a sidecar's memory under load within issue
// #12's 20 MiB: anonymous memory at 1k rps was 20.3 MiB at 100, 18.7 at
// 75 and 16.6 at 50 in one bench/perf run (bench/README.md), where GC
// work grows about as 1/GOGC (5% of the sidecar's CPU at its maximum
// rate at 100).
const DefaultGCPercent = 75

// applyGCPercent sets the garbage collector's target: --gc-percent when
// given, else GOGC from the environment when set, else the default.
func applyGCPercent(cmd *cobra.Command, n int) error {
	if n <= 0 {
		return fmt.Errorf("--gc-percent %d: must be positive", n)
	}
	if !cmd.Flags().Changed("gc-percent") && os.Getenv("GOGC") != "" {
		return nil // the runtime read it
	}
	debug.SetGCPercent(n)
	return nil
}

// DefaultConcurrency is Istio's sidecar default: two worker threads
// (ProxyConfig.concurrency, https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#ProxyConfig).
const DefaultConcurrency = 2

// proxyConcurrency is the GOMAXPROCS --concurrency asks for. Given, it
// is taken as asked (0 = every core, as Envoy's --concurrency 0). Not
// given, it is the default of 2 unless the environment's GOMAXPROCS says
// otherwise or the runtime's own default (the cgroup CPU limit, Go 1.25+)
// is lower, as Istio sizes the proxy from the pod's CPU limit.
func proxyConcurrency(cmd *cobra.Command, n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("--concurrency %d: must be 0 (every core) or more", n)
	}
	if cmd.Flags().Changed("concurrency") {
		if n == 0 {
			return runtime.NumCPU(), nil
		}
		return n, nil
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), nil
	}
	return min(n, runtime.GOMAXPROCS(0)), nil
}

// interceptionMode checks --interception-mode: REDIRECT is for sidecars
// and replaces the local-mode outbound listeners, so --outbound-address
// and --outbound-tcp-ip cannot be given with it.
func interceptionMode(cmd *cobra.Command, v, typ, tcpIP string) (model.InterceptionMode, error) {
	switch model.InterceptionMode(v) {
	case model.InterceptionNone:
		return model.InterceptionNone, nil
	case model.InterceptionRedirect:
		if typ != string(model.Sidecar) {
			return "", fmt.Errorf("--interception-mode REDIRECT: only a sidecar is captured, not a %s", typ)
		}
		if cmd.Flags().Changed("outbound-address") || tcpIP != "" {
			return "", fmt.Errorf("--interception-mode REDIRECT: --outbound-address and --outbound-tcp-ip are local mode's; with capture the app's connections arrive on the virtual outbound listener")
		}
		return model.InterceptionRedirect, nil
	}
	return "", fmt.Errorf("--interception-mode %q: must be NONE or REDIRECT (TPROXY is not implemented)", v)
}

// inboundPorts pairs the repeated --inbound-address and --app-address
// flags by order.
func inboundPorts(inbound, app []string) ([]model.InboundPort, error) {
	if len(inbound) != len(app) {
		return nil, fmt.Errorf("--inbound-address and --app-address go together: %d inbound addresses, %d app addresses", len(inbound), len(app))
	}
	seen := map[string]bool{}
	out := make([]model.InboundPort, len(inbound))
	for i := range inbound {
		if inbound[i] == "" || app[i] == "" {
			return nil, fmt.Errorf("--inbound-address/--app-address pair %d: both must be set", i+1)
		}
		if seen[inbound[i]] {
			return nil, fmt.Errorf("--inbound-address %s: given twice", inbound[i])
		}
		seen[inbound[i]] = true
		out[i] = model.InboundPort{Address: inbound[i], App: app[i]}
	}
	return out, nil
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
