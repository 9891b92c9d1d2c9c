package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/analysis"
)

func init() { register(newAnalyzeCommand) }

// Exit codes of `sluice analyze`, istioctl's (istioctl/cmd/sysexits.go).
const (
	exitIncorrectUsage      = 64
	exitDataError           = 65
	exitAnalyzerFoundIssues = 79
)

// exitError is an error with the process exit code it should end with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// analyzeOptions is what `sluice analyze` was asked.
type analyzeOptions struct {
	namespace        string
	allNamespaces    bool
	output           string
	outputThreshold  string
	failureThreshold string
	suppress         []string
	meshConfigFile   string
	kubeconfig       string
	analyzers        []string
	listAnalyzers    bool
}

func newAnalyzeCommand() *cobra.Command {
	var o analyzeOptions
	cmd := &cobra.Command{
		Use:   "analyze [FILE|DIR|- ...]",
		Short: "Find mistakes across resources, as istioctl analyze does, with Istio's message codes",
		Long: `analyze reads the YAML files and folders given (every .yaml, .yml and .json
file under a folder; "-" is standard input) and runs Istio's configuration
analyzers over them: it reports the cross-resource mistakes no single resource's
validation sees (a VirtualService naming a Gateway or subset that does not exist,
conflicting Gateways, Services whose port names Istio cannot read, ...), with
Istio's message codes, levels and texts
(istio.io/latest/docs/reference/config/analysis). Kubernetes Pods, Deployments,
Nodes, Services, Namespaces and Secrets in the input are read too.

As with istioctl analyze on files, an istio-ingressgateway Pod and Service in
istio-system are assumed unless the input defines them, resources without a
namespace get --namespace (default "default"), and only messages about that
namespace (or about cluster-scoped resources) are printed; --all-namespaces
prints all.

Exit status: 79 when a message is at or above --failure-threshold (default
Error), 65 when a document could not be read, 0 otherwise.`,
		Example: `  sluice analyze ./mesh
  sluice analyze -A -o json bookinfo.yaml gateway.yaml
  sluice analyze --analyzer virtualservice.DestinationRuleAnalyzer ./mesh
  sluice analyze --suppress "IST0118=Service default/*" ./mesh`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", `namespace of resources that name none, and of the messages printed (default "default")`)
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "print messages about every namespace")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text, json or yaml")
	f.StringVar(&o.outputThreshold, "output-threshold", "Info", "least severe level printed: Info, Warning or Error")
	f.StringVar(&o.failureThreshold, "failure-threshold", "Error", "least severe level that makes the exit status 79: Info, Warning or Error")
	f.StringArrayVarP(&o.suppress, "suppress", "S", nil, `drop a message code on a resource: CODE=Kind ns/name, '*' matching any text (e.g. "IST0118=Service default/*"); repeatable`)
	f.StringVar(&o.meshConfigFile, "meshConfigFile", "", "mesh config (MeshConfig YAML) to analyze with")
	f.StringArrayVar(&o.analyzers, "analyzer", nil, "run only this analyzer (e.g. gateway.ConflictingGatewayAnalyzer); repeatable")
	f.BoolVarP(&o.listAnalyzers, "list-analyzers", "L", false, "list the analyzers and the codes each reports")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "analyze a live Kubernetes cluster (not built yet)")
	return cmd
}

func (o *analyzeOptions) run(stdin io.Reader, stdout, stderr io.Writer, args []string) error {
	if o.listAnalyzers {
		for _, a := range analysis.Analyzers() {
			fmt.Fprintf(stdout, "* %s:\n    %s (%s)\n", a.Name, a.Description, strings.Join(a.Codes, ", "))
		}
		return nil
	}
	run, outLevel, failLevel, err := o.options(stderr, args)
	if err != nil {
		return &exitError{code: exitIncorrectUsage, err: err}
	}
	snap, err := analysis.Load(args, analysis.LoadOptions{DefaultNamespace: run.Namespace, MeshConfigFile: o.meshConfigFile, Stdin: stdin})
	if err != nil {
		return err
	}
	for _, f := range snap.SkippedFiles {
		fmt.Fprintf(stderr, "Skipping file %v, recognized file extensions are: %v\n", f, analysis.FileExtensions)
	}
	for _, e := range snap.Errors {
		fmt.Fprintf(stderr, "Error(s) adding files: %v\n", e)
	}
	msgs, err := analysis.Run(snap, run)
	if err != nil {
		return &exitError{code: exitIncorrectUsage, err: err}
	}
	var shown []analysis.Message
	for _, m := range msgs {
		if m.Level() >= outLevel {
			shown = append(shown, m)
		}
	}
	if err := printMessages(stdout, o.output, shown); err != nil {
		return err
	}
	if len(shown) == 0 && o.output == "text" {
		fmt.Fprintln(stderr, noIssues(args, len(snap.Errors)))
	}
	for _, m := range msgs {
		if m.Level() >= failLevel {
			return &exitError{code: exitAnalyzerFoundIssues, err: fmt.Errorf("analyzers found issues when analyzing %s", o.target(run))}
		}
	}
	if len(snap.Errors) > 0 {
		return &exitError{code: exitDataError, err: errors.New("some files couldn't be parsed")}
	}
	return nil
}

// options checks the flags and turns them into the analysis's options.
func (o *analyzeOptions) options(stderr io.Writer, args []string) (analysis.RunOptions, analysis.Level, analysis.Level, error) {
	var run analysis.RunOptions
	if o.kubeconfig != "" {
		return run, 0, 0, errors.New("analyze --kubeconfig: analyzing a live Kubernetes cluster is not built yet (issue 11); give files or folders")
	}
	if len(args) == 0 {
		return run, 0, 0, errors.New("analyze: give the files or folders to analyze")
	}
	switch o.output {
	case "text", "json", "yaml":
	default:
		return run, 0, 0, fmt.Errorf("analyze: --output %q: want text, json or yaml", o.output)
	}
	outLevel, err := analysis.ParseLevel(o.outputThreshold)
	if err != nil {
		return run, 0, 0, fmt.Errorf("analyze: --output-threshold: %w", err)
	}
	failLevel, err := analysis.ParseLevel(o.failureThreshold)
	if err != nil {
		return run, 0, 0, fmt.Errorf("analyze: --failure-threshold: %w", err)
	}
	for _, s := range o.suppress {
		sup, err := analysis.ParseSuppression(s)
		if err != nil {
			return run, 0, 0, fmt.Errorf("analyze: --suppress: %w", err)
		}
		if _, ok := analysis.MessageTypeByCode(sup.Code); !ok {
			fmt.Fprintf(stderr, "Warning: Supplied message code '%s' is an unknown message code and will not have any effect.\n", sup.Code)
		}
		run.Suppressions = append(run.Suppressions, sup)
	}
	run.Analyzers = o.analyzers
	switch {
	case o.allNamespaces:
		run.Namespace = ""
	case o.namespace != "":
		run.Namespace = o.namespace
	default:
		run.Namespace = "default"
	}
	return run, outLevel, failLevel, nil
}

func (o *analyzeOptions) target(run analysis.RunOptions) string {
	if run.Namespace == "" {
		return "all namespaces"
	}
	return "namespace: " + run.Namespace
}

// noIssues is istioctl's line for a clean analysis.
func noIssues(files []string, parseErrors int) string {
	switch {
	case parseErrors > 0:
		docs := "documents"
		if parseErrors == 1 {
			docs = "document"
		}
		return fmt.Sprintf("No validation issues found when analyzing %s (but %d %s could not be parsed).", strings.Join(files, ", "), parseErrors, docs)
	case len(files) > 1:
		return "\u2714 No validation issues found when analyzing:\n  - " + strings.Join(files, "\n  - ")
	}
	return fmt.Sprintf("\u2714 No validation issues found when analyzing %s.", strings.Join(files, ""))
}

// jsonMessage is one message of -o json and -o yaml.
type jsonMessage struct {
	Code     string `json:"code"`
	Level    string `json:"level"`
	Resource string `json:"resource"`
	Message  string `json:"message"`
	Origin   string `json:"origin,omitempty"`
}

func printMessages(w io.Writer, format string, msgs []analysis.Message) error {
	if format == "text" {
		for _, m := range msgs {
			fmt.Fprintln(w, m.String())
		}
		return nil
	}
	list := make([]jsonMessage, 0, len(msgs))
	for _, m := range msgs {
		list = append(list, jsonMessage{Code: m.Code(), Level: m.Level().String(), Resource: m.Resource.String(),
			Message: m.Text(), Origin: m.Origin.String()})
	}
	var out []byte
	var err error
	if format == "json" {
		out, err = json.MarshalIndent(list, "", "  ")
	} else {
		out, err = yaml.Marshal(list)
	}
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	_, err = fmt.Fprintln(w, strings.TrimRight(string(out), "\n"))
	return err
}
