package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/jwks"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/registry"
	"github.com/sluice-mesh/sluice/pkg/xdsgen/security"
)

func init() { register(newAuthzCommand) }

func newAuthzCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "authz",
		Short: "Explain authorization: evaluate the folder's policies for one request, offline",
	}
	cmd.AddCommand(newAuthzCheckCommand())
	return cmd
}

// authzCheck is what `sluice authz check` was asked.
type authzCheck struct {
	configDir, meshConfig, jwksCAFile string
	from, to, labels                  string
	gateway                           bool
	method, path, host, sourceIP      string
	headers                           []string
	port                              uint16
	jwtFile, output                   string
}

func newAuthzCheckCommand() *cobra.Command {
	var a authzCheck
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Evaluate the folder's AuthorizationPolicies (and RequestAuthentications) for one request and print the decision trace",
		Long: `check builds, from the config folder, the jwt_authn and RBAC filters the
destination workload's sidecar gets (exactly what sluice control sends it) and
evaluates them for one request with the proxy's own engines, offline. It prints
every filter, every policy (Istio's names: ns[NS]-policy[NAME]-rule[N]) and
why each matched or not, then the decision: allowed, or denied by which policy
(or because no ALLOW policy matched). A token (--jwt) is verified as the
proxy would: an invalid one is the proxy's 401.

--from ns/sa is the caller's mTLS identity (spiffe://<trust domain>/ns/NS/sa/SA);
leave it out for a plaintext caller. --to ns/name names the workload: its
WorkloadEntry gives its labels (or --labels, e.g. for a gateway with
--gateway).`,
		Example: `  sluice authz check --config-dir ./mesh --from foo/sleep --to foo/httpbin --path /headers
  sluice authz check --config-dir ./mesh --from bar/sleep --to foo/httpbin --method POST --port 80 --header x-token=admin
  sluice authz check --config-dir ./mesh --to foo/httpbin --jwt demo.jwt -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The filters' own log lines would only repeat the trace.
			slog.SetDefault(slog.New(slog.DiscardHandler))
			res, err := a.run()
			if err != nil {
				return err
			}
			if a.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			res.print(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.configDir, "config-dir", "", "folder of YAML config and registry, as sluice control reads it (required)")
	f.StringVar(&a.meshConfig, "mesh-config", "", "Istio MeshConfig YAML file (trust domain, root namespace)")
	f.StringVar(&a.jwksCAFile, "jwks-ca-file", "", "PEM CA certificates also trusted for https jwksUris")
	f.StringVar(&a.from, "from", "", "the caller's identity, namespace/serviceaccount (default: a plaintext caller without one)")
	f.StringVar(&a.to, "to", "", "the destination workload, namespace/name (its WorkloadEntry) (required)")
	f.StringVar(&a.labels, "labels", "", "the destination's labels k=v,k=v (default: its WorkloadEntry's)")
	f.BoolVar(&a.gateway, "gateway", false, "the destination is a gateway (router), not a sidecar")
	f.StringVar(&a.method, "method", "GET", "request method")
	f.StringVar(&a.path, "path", "/", "request path (with any query), as the proxy sees it after normalization")
	f.StringVar(&a.host, "host", "", "request authority (Host); default the destination's name")
	f.StringArrayVar(&a.headers, "header", nil, "request header name=value (repeat)")
	f.Uint16Var(&a.port, "port", 0, "destination (workload) port; its service port's protocol picks HTTP or TCP filters (default: HTTP)")
	f.StringVar(&a.sourceIP, "source-ip", "", "the caller's address (source.ip, ipBlocks)")
	f.StringVar(&a.jwtFile, "jwt", "", "file holding a JWT sent as Authorization: Bearer")
	f.StringVarP(&a.output, "output", "o", "text", "text or json")
	cmd.MarkFlagRequired("config-dir")
	cmd.MarkFlagRequired("to")
	return cmd
}

// authzResult is the check's outcome.
type authzResult struct {
	Request  string `json:"request"`
	Workload string `json:"workload"`
	Protocol string `json:"protocol"`
	// JWT is what jwt_authn made of the token; Status is its answer when
	// it refused the request (401/403) or 0.
	JWT     string            `json:"jwt,omitempty"`
	Status  int               `json:"status,omitempty"`
	Trace   *rbac.ChainTrace  `json:"trace,omitempty"`
	Allowed bool              `json:"allowed"`
	Notes   []string          `json:"notes,omitempty"`
	Labels  map[string]string `json:"labels"`
}

func (a *authzCheck) run() (*authzResult, error) {
	if a.output != "text" && a.output != "json" {
		return nil, fmt.Errorf("--output %q: text or json", a.output)
	}
	ns, name, ok := strings.Cut(a.to, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("--to %q: want namespace/name", a.to)
	}
	push, resources, err := a.push()
	if err != nil {
		return nil, err
	}
	labels, err := a.workloadLabels(resources, ns, name)
	if err != nil {
		return nil, err
	}
	w := security.Workload{Namespace: ns, Labels: labels, Gateway: a.gateway}
	proto := workloadProtocol(push, resources, ns, name, a.port)
	filters, err := security.ForPort(push, w, proto)
	if err != nil {
		return nil, fmt.Errorf("authz check: %w", err)
	}
	attrs, err := a.attributes(push, name)
	if err != nil {
		return nil, err
	}
	res := &authzResult{Workload: ns + "/" + name, Protocol: string(proto), Labels: labels, Notes: filters.Notes, Allowed: true,
		Request: a.describe(attrs, proto)}
	if proto == registry.ProtocolUnknown {
		res.Notes = append(res.Notes, fmt.Sprintf("port %d has no known protocol, so the sidecar sniffs it: this traces an HTTP request; "+
			"a connection that is not HTTP/1.1 or h2c is judged by the TCP (network RBAC) filters instead", a.port))
	}
	if proto.IsHTTP() {
		if a.jwtFile != "" && !a.verifyJWT(filters, attrs, res) {
			res.Allowed = false
			return res, nil
		}
		res.Trace, err = rbac.TraceHTTPFilters(filters.HTTP, attrs)
	} else {
		res.Trace, err = rbac.TraceNetworkFilters(filters.Network, attrs)
	}
	if err != nil {
		return nil, fmt.Errorf("authz check: %w", err)
	}
	res.Allowed = res.Trace.Allowed
	return res, nil
}

// push reads the folder as the control plane does and builds its push.
func (a *authzCheck) push() (*model.PushContext, []*config.Resource, error) {
	mesh := meshconfig.Default()
	if a.meshConfig != "" {
		var err error
		if mesh, err = meshconfig.Load(a.meshConfig); err != nil {
			return nil, nil, err
		}
	}
	src, err := filesource.New(filesource.Options{Dir: a.configDir, DefaultNamespace: "default"})
	if err != nil {
		return nil, nil, err
	}
	snap, err := src.Load()
	if err != nil {
		return nil, nil, err
	}
	for _, e := range snap.Errors {
		fmt.Fprintln(os.Stderr, "warning: config rejected (as the control plane would):", e.Error())
	}
	var extra []byte
	if a.jwksCAFile != "" {
		if extra, err = os.ReadFile(a.jwksCAFile); err != nil {
			return nil, nil, fmt.Errorf("--jwks-ca-file: %w", err)
		}
	}
	resolver, err := jwks.New(jwks.Options{ExtraRootsPEM: extra})
	if err != nil {
		return nil, nil, err
	}
	return model.NewPushContext(model.PushOptions{Mesh: mesh, Resources: snap.Resources, Jwks: resolver}), snap.Resources, nil
}

// workloadLabels are --labels, else the WorkloadEntry's.
func (a *authzCheck) workloadLabels(resources []*config.Resource, ns, name string) (map[string]string, error) {
	if a.labels != "" {
		return parseLabels(a.labels)
	}
	var known []string
	for _, r := range resources {
		we, ok := r.Spec.(*networking.WorkloadEntry)
		if !ok {
			continue
		}
		if r.Namespace == ns && r.Name == name {
			return maps.Clone(we.Labels), nil
		}
		known = append(known, r.Namespace+"/"+r.Name)
	}
	slices.Sort(known)
	return nil, fmt.Errorf("--to %s/%s: no WorkloadEntry of that name in the folder (there are: %s); or give --labels", ns, name, strings.Join(known, ", "))
}

// workloadProtocol is the protocol of the service port whose endpoint is
// the workload's port, as its sidecar's inbound listener serves it (HTTP
// when no service names the port, as sluice does).
func workloadProtocol(push *model.PushContext, resources []*config.Resource, ns, name string, port uint16) registry.Protocol {
	if port == 0 {
		return registry.ProtocolHTTP
	}
	workload := ns + "/" + name
	for _, svc := range push.Services() {
		for _, p := range svc.Ports {
			for _, ep := range push.Endpoints(svc, p.Number) {
				if ep.Workload == workload && ep.Port == uint32(port) {
					return p.Protocol
				}
			}
		}
	}
	// No service port declares it: the sidecar sniffs it.
	return registry.ProtocolUnknown
}

// attributes are the request the flags describe.
func (a *authzCheck) attributes(push *model.PushContext, name string) (*rbac.Attributes, error) {
	attrs := &rbac.Attributes{Method: a.method, Path: a.path, Host: a.host, Headers: http.Header{}, DestinationPort: a.port}
	if attrs.Host == "" {
		attrs.Host = name
	}
	for _, h := range a.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--header %q: want name=value", h)
		}
		attrs.Headers.Add(k, v)
	}
	if a.from != "" {
		ns, sa, ok := strings.Cut(a.from, "/")
		if !ok || ns == "" || sa == "" {
			return nil, fmt.Errorf("--from %q: want namespace/serviceaccount", a.from)
		}
		td := push.Mesh.GetTrustDomain()
		if td == "" {
			td = meshconfig.DefaultTrustDomain
		}
		attrs.SourcePrincipal = ca.Identity(td, ns, sa)
	}
	if a.sourceIP != "" {
		ip, err := netip.ParseAddr(a.sourceIP)
		if err != nil {
			return nil, fmt.Errorf("--source-ip: %w", err)
		}
		attrs.SourceIP = ip
	}
	return attrs, nil
}

// verifyJWT runs the workload's jwt_authn filter, the proxy's own, on the
// token: false when it answered (refused) the request, else the payload
// it verified goes to the RBAC attributes.
func (a *authzCheck) verifyJWT(filters security.Filters, attrs *rbac.Attributes, res *authzResult) bool {
	raw, err := os.ReadFile(a.jwtFile)
	if err != nil {
		res.JWT = "--jwt: " + err.Error()
		res.Status = http.StatusUnauthorized
		return false
	}
	token := strings.TrimSpace(string(raw))
	var jwtFilter *httpfilter.Filter
	for _, hf := range filters.HTTP {
		if hf.Name != security.JwtFilterName {
			continue
		}
		fac, ok := httpfilter.Lookup(hf.Name, hf.GetTypedConfig())
		if !ok {
			res.JWT = "the proxy has no jwt_authn filter"
			return false
		}
		f, err := fac.NewFilter(hf.GetTypedConfig())
		if err != nil {
			res.JWT = "jwt_authn config: " + err.Error()
			return false
		}
		jwtFilter = &f
	}
	if jwtFilter == nil {
		res.JWT = "no RequestAuthentication selects the workload: the token is not verified and no request principal is set"
		return true
	}
	req := httptest.NewRequest(attrs.Method, "http://"+attrs.Host+attrs.Path, nil)
	req.Header = attrs.Headers.Clone()
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	s := &httpfilter.Stream{W: rec, R: req, Conn: &httpfilter.Conn{}, Listener: httpfilter.NewScope().Listener("authz_check")}
	if (*jwtFilter).Decode(s) == httpfilter.Answered {
		res.Status = rec.Code
		res.JWT = fmt.Sprintf("refused by jwt_authn: %d %s", rec.Code, strings.TrimSpace(rec.Body.String()))
		return false
	}
	payload, _ := s.Metadata[rbac.JWTFilter][rbac.JWTPayloadKey].(map[string]any)
	if payload == nil {
		res.JWT = "token not verified (no provider took it)"
		return true
	}
	attrs.JWTPayload = payload
	attrs.Headers = req.Header
	res.JWT = fmt.Sprintf("verified: iss=%v sub=%v", payload["iss"], payload["sub"])
	return true
}

func (a *authzCheck) describe(attrs *rbac.Attributes, proto registry.Protocol) string {
	from := "a plaintext caller"
	if attrs.SourcePrincipal != "" {
		from = attrs.SourcePrincipal
	}
	if !proto.IsHTTP() {
		return fmt.Sprintf("TCP connection from %s to port %d", from, attrs.DestinationPort)
	}
	s := fmt.Sprintf("%s %s%s from %s", attrs.Method, attrs.Host, attrs.Path, from)
	if attrs.DestinationPort != 0 {
		s += fmt.Sprintf(" to port %d", attrs.DestinationPort)
	}
	return s
}

func (r *authzResult) print(w io.Writer) {
	fmt.Fprintf(w, "request:  %s\nworkload: %s (%s)\n", r.Request, r.Workload, r.Protocol)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note:     %s\n", n)
	}
	if r.JWT != "" {
		fmt.Fprintf(w, "jwt:      %s\n", r.JWT)
	}
	if r.Trace != nil {
		if len(r.Trace.Filters) == 0 {
			fmt.Fprintln(w, "rbac:     no AuthorizationPolicy selects the workload")
		}
		for _, f := range r.Trace.Filters {
			printEngine(w, f.Index, "", f.Rules)
			printEngine(w, f.Index, " (dry-run: logged, not enforced)", f.Shadow)
		}
	}
	switch {
	case r.Status != 0:
		fmt.Fprintf(w, "DECISION: DENIED by jwt_authn (%d)\n", r.Status)
	case r.Allowed:
		fmt.Fprintln(w, "DECISION: ALLOWED")
	default:
		fmt.Fprintf(w, "DECISION: DENIED (403 RBAC: access denied): %s\n", strings.TrimPrefix(r.Trace.Decision, "denied: "))
	}
}

func printEngine(w io.Writer, index int, what string, e *rbac.EngineTrace) {
	if e == nil {
		return
	}
	verdict := "allows"
	if !e.Allowed {
		verdict = "denies"
	}
	fmt.Fprintf(w, "filter %d: %s%s %s: %s\n", index, e.Action, what, verdict, e.Reason)
	for _, p := range e.Policies {
		mark := "  no match"
		if p.Matched {
			mark = "  MATCH   "
		}
		fmt.Fprintf(w, "%s %s\n", mark, p.Name)
		for _, n := range p.Permissions {
			fmt.Fprintf(w, "             permission: %s\n", n.Why)
		}
		for _, n := range p.Principals {
			fmt.Fprintf(w, "             principal:  %s\n", n.Why)
		}
	}
}
