package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluice-mesh/sluice/pkg/kube/install"
)

func init() {
	register(newInstallCommand)
	register(newManifestCommand)
	register(newUninstallCommand)
	register(newTagCommand)
}

// renderFlags are the flags install and manifest generate share.
type renderFlags struct {
	set       []string
	revision  string
	namespace string
}

func (r *renderFlags) add(f *pflag.FlagSet) {
	f.StringArrayVarP(&r.set, "set", "s", nil, "a chart value, Helm's syntax (profile=default|demo|minimal|empty|ambient, hub=..., tag=..., gateways.ingress.enabled=false, meshConfig.accessLogFile=/dev/stdout; repeatable)")
	f.StringVarP(&r.revision, "revision", "r", "", "control plane revision (istio.io/rev): istiod-<revision> beside the others, for canary upgrades")
	f.StringVarP(&r.namespace, "namespace", "n", install.DefaultNamespace, "the control plane's namespace")
}

func (r *renderFlags) render() (*install.Manifest, error) {
	return install.Render(install.RenderOptions{Set: r.set, Revision: r.revision, Namespace: r.namespace,
		DefaultProfile: "default", DefaultTag: install.ImageTag()})
}

// kubeClient is the REST config of --kubeconfig, else $KUBECONFIG or
// ~/.kube/config, else the in-cluster config (kubectl's rules).
func kubeClient(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

func newInstallCommand() *cobra.Command {
	var (
		rf                renderFlags
		kubeconfig        string
		yes, dryRun, wait bool
		timeout           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "install [--set profile=default|demo|minimal|empty|ambient] [--revision R] [-y]",
		Short: "Install sluice on a Kubernetes cluster (as istioctl install)",
		Long: `install renders the chart manifests/charts/sluice embedded in this binary (the
one "helm install" takes) with Helm's engine for the profile and values given,
and applies it with server-side apply (field manager sluice-installer): Istio's
and Gateway API's CRDs, the control plane (sluice control as istiod[-<revision>]:
Deployment, Service, RBAC, the sidecar injection webhook configuration, the
istio MeshConfig ConfigMap), the profile's gateways and, for ambient, the node
proxy DaemonSet ztunnel; what an earlier install of the same revision made and
this one does not hold is deleted (pruned). It then waits until the Deployments
and DaemonSets are available (--wait). Without -y it shows what it would apply
and asks first; --dry-run only shows it. Profiles are Istio's: default
(control plane and ingress gateway), demo (and egress gateway, access logs),
minimal (control plane), empty (nothing), ambient (control plane and the node
proxy ztunnel on every node, no gateway; not with --revision).`,
		Example: `  sluice install -y
  sluice install --set profile=demo --set hub=registry.example/mesh --set tag=1.2.3 -y
  sluice install --revision canary -y && sluice tag set prod --revision canary --overwrite`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := rf.render()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			summarize(out, m, rf.namespace)
			if dryRun {
				fmt.Fprintln(out, "dry run: nothing applied")
				return nil
			}
			if !yes && !confirm(cmd.InOrStdin(), out, "Proceed? (y/N) ") {
				return errors.New("install cancelled (-y installs without asking)")
			}
			cfg, err := kubeClient(kubeconfig)
			if err != nil {
				return err
			}
			c, err := install.NewClient(cfg)
			if err != nil {
				return err
			}
			if err := c.Apply(cmd.Context(), m, rf.namespace, install.ApplyOptions{}); err != nil {
				return err
			}
			fmt.Fprintf(out, "applied %d objects\n", len(m.Objects))
			if _, err := c.Prune(cmd.Context(), m, out); err != nil {
				return err
			}
			if !wait {
				return nil
			}
			if err := c.WaitReady(cmd.Context(), m, timeout); err != nil {
				return err
			}
			fmt.Fprintln(out, "installation complete")
			return nil
		},
	}
	f := cmd.Flags()
	rf.add(f)
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default $KUBECONFIG, ~/.kube/config, or in a pod the in-cluster config)")
	f.BoolVarP(&yes, "skip-confirmation", "y", false, "apply without asking")
	f.BoolVar(&dryRun, "dry-run", false, "show what would be applied, apply nothing")
	f.BoolVar(&wait, "wait", true, "wait until the Deployments and DaemonSets are available")
	f.DurationVar(&timeout, "readiness-timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// summarize prints what a manifest holds, by kind.
func summarize(w io.Writer, m *install.Manifest, ns string) {
	rev := m.Revision
	if rev == "" {
		rev = "default"
	}
	profile, _ := m.Values["profile"].(string)
	fmt.Fprintf(w, "sluice %s: profile %s, revision %s, namespace %s, %d objects:\n", install.ImageTag(), profile, rev, ns, len(m.Objects))
	byKind := map[string][]string{}
	for _, o := range m.Objects {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o.GetName())
	}
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		names := byKind[k]
		if len(names) > 4 {
			names = append(names[:3:3], fmt.Sprintf("... (%d)", len(names)))
		}
		fmt.Fprintf(w, "  %s: %s\n", k, strings.Join(names, ", "))
	}
}

// confirm asks on w and reads a y/yes answer from r; no answer is no.
func confirm(r io.Reader, w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	line, _ := bufio.NewReader(r).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	fmt.Fprintln(w)
	return false
}

func newManifestCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Render the manifests install applies (as istioctl manifest)"}
	var rf renderFlags
	gen := &cobra.Command{
		Use:   "generate [--set profile=...] [--revision R]",
		Short: "Print the manifests install would apply, as YAML",
		Long: `generate renders the embedded chart exactly as install does and prints the
objects in apply order; "helm template sluice manifests/charts/sluice -n
istio-system --set profile=P --set tag=T" renders the same objects.`,
		Example: `  sluice manifest generate --set profile=demo > sluice.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := rf.render()
			if err != nil {
				return err
			}
			y, err := m.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	rf.add(gen.Flags())
	cmd.AddCommand(gen)
	return cmd
}

func newUninstallCommand() *cobra.Command {
	var (
		o          install.UninstallOptions
		kubeconfig string
		yes        bool
	)
	cmd := &cobra.Command{
		Use:   "uninstall [--revision R | --purge] [-y]",
		Short: "Remove what install applied (as istioctl uninstall)",
		Long: `uninstall deletes the objects install labelled (app.kubernetes.io/managed-by=sluice):
one revision's (sluice.io/revision=<revision>, its revision tags included), or
with --purge every revision's and the CRDs (deleting the CRDs deletes every
Istio and Gateway API object stored in them). The namespace is left, as
istioctl leaves istio-system. Without -y it lists what it would remove and asks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Purge && cmd.Flags().Changed("revision") {
				return errors.New("--purge removes every revision: give --revision or --purge, not both")
			}
			cfg, err := kubeClient(kubeconfig)
			if err != nil {
				return err
			}
			c, err := install.NewClient(cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !yes && !o.DryRun {
				dry := o
				dry.DryRun, dry.Log = true, out
				if _, err := c.Uninstall(cmd.Context(), dry); err != nil {
					return err
				}
				if !confirm(cmd.InOrStdin(), out, "Proceed? (y/N) ") {
					return errors.New("uninstall cancelled (-y removes without asking)")
				}
			}
			o.Log = out
			done, err := c.Uninstall(cmd.Context(), o)
			if err == nil && len(done) == 0 {
				fmt.Fprintf(out, "nothing installed matches %s\n", o.Selector())
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Revision, "revision", "r", "", "the revision to remove (default: the default revision)")
	f.BoolVar(&o.Purge, "purge", false, "remove every revision and the CRDs")
	f.BoolVar(&o.DryRun, "dry-run", false, "list what would be removed, remove nothing")
	f.BoolVarP(&yes, "skip-confirmation", "y", false, "remove without asking")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default $KUBECONFIG, ~/.kube/config)")
	return cmd
}

func newTagCommand() *cobra.Command {
	var kubeconfig, namespace string
	clientset := func() (kubernetes.Interface, error) {
		cfg, err := kubeClient(kubeconfig)
		if err != nil {
			return nil, err
		}
		return kubernetes.NewForConfig(cfg)
	}
	cmd := &cobra.Command{
		Use:   "tag",
		Short: "Revision tags: stable names for control plane revisions (as istioctl tag)",
		Long: `A revision tag (MutatingWebhookConfiguration istio-revision-tag-<tag>) injects
namespaces labelled istio.io/rev=<tag> with the revision it points at; moving
the tag (tag set --overwrite) moves them all to another revision, the canary
upgrade of the control plane.`,
	}
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default $KUBECONFIG, ~/.kube/config)")
	cmd.PersistentFlags().StringVarP(&namespace, "namespace", "n", install.DefaultNamespace, "the control plane's namespace")
	cmd.AddCommand(newTagSetCommand(clientset, &namespace), newTagListCommand(clientset), newTagRemoveCommand(clientset))
	return cmd
}

func newTagSetCommand(clientset func() (kubernetes.Interface, error), namespace *string) *cobra.Command {
	var o install.TagOptions
	cmd := &cobra.Command{
		Use:     "set TAG --revision R [--overwrite]",
		Short:   "Point a tag at a revision",
		Example: `  sluice tag set prod --revision canary`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := clientset()
			if err != nil {
				return err
			}
			o.Tag, o.Namespace = args[0], *namespace
			w, err := install.SetTag(cmd.Context(), cs, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tag %s -> revision %s (MutatingWebhookConfiguration %s)\n", o.Tag, w.Labels["istio.io/rev"], w.Name)
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.Revision, "revision", "r", "", "the revision the tag points at (default: the default revision)")
	cmd.Flags().BoolVar(&o.Overwrite, "overwrite", false, "move an existing tag to this revision")
	return cmd
}

func newTagListCommand(clientset func() (kubernetes.Interface, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tags, their revisions and the namespaces using them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := clientset()
			if err != nil {
				return err
			}
			tags, err := install.ListTags(cmd.Context(), cs)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-16s %-16s %s\n", "TAG", "REVISION", "NAMESPACES")
			for _, t := range tags {
				fmt.Fprintf(w, "%-16s %-16s %s\n", t.Name, t.Revision, strings.Join(t.Namespaces, ","))
			}
			return nil
		},
	}
}

func newTagRemoveCommand(clientset func() (kubernetes.Interface, error)) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove TAG [-y]",
		Short: "Remove a tag (refused while namespaces use it, unless -y)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := clientset()
			if err != nil {
				return err
			}
			if err := install.RemoveTag(cmd.Context(), cs, args[0], yes); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tag %s removed\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "skip-confirmation", "y", false, "remove even while namespaces use the tag")
	return cmd
}
