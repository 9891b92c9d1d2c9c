package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/analysis"
)

// analyzersGroup is the corpus group of Istio's analyzer test rows.
const analyzersGroup = "istio-analyzers"

// analyzerCase is an istio-analyzers expect.yaml (corpus README,
// "Analyzer cases").
type analyzerCase struct {
	Case           string            `json:"case"`
	Source         map[string]any    `json:"source"`
	Analyzer       string            `json:"analyzer"`
	IstioNamespace string            `json:"istio_namespace"`
	MeshConfig     string            `json:"mesh_config"`
	CodesInScope   []string          `json:"codes_in_scope"`
	TypesInScope   map[string]string `json:"message_types_in_scope"`
	Expected       []analyzerMessage `json:"expected_messages"`
	Match          string            `json:"match"`
}

// analyzerMessage is what a case compares: the message's code and level
// and the resource it is about. A nil Namespace is a resource the input
// gave no namespace.
type analyzerMessage struct {
	Code      string  `json:"code"`
	Type      string  `json:"type"`
	Level     string  `json:"level"`
	Kind      string  `json:"kind"`
	Namespace *string `json:"namespace"`
	Name      string  `json:"name"`
}

func (m analyzerMessage) key() string {
	ns := "<none>"
	if m.Namespace != nil {
		ns = *m.Namespace
	}
	return fmt.Sprintf("%s %s %s %s %s/%s", m.Code, m.Type, m.Level, m.Kind, ns, m.Name)
}

// TestIstioAnalyzers runs each istio-analyzers case through pkg/analysis:
// the case's config (and mesh config) loaded as istioctl loads files, with
// no default namespace, the one analyzer the case names run alone, and its
// messages compared with the expected ones as a multiset of {code, level,
// kind, namespace, name} (and the message type's name, which the code
// implies). A case whose analyzer is not ported is skipped
// with that reason.
func TestIstioAnalyzers(t *testing.T) {
	dir := filepath.Join(corpusDir(t), analyzersGroup)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		missing(t, fmt.Sprintf("conformance group %s not found at %s", analyzersGroup, dir))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	total := &Tally{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "_") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		caseDir := filepath.Join(dir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			switch err := runAnalyzerCase(t, caseDir); {
			case errors.Is(err, errNotPorted):
				total.add(0, 0, 1)
				t.Skip(err)
			case err != nil:
				total.add(0, 1, 0)
				t.Error(err)
			default:
				total.add(1, 0, 0)
			}
		})
	}
	summary := fmt.Sprintf("conformance %s: %s", analyzersGroup, total)
	t.Log(summary)
	fmt.Println(summary)
	checkFloor(t, analyzersGroup, total)
}

// errNotPorted marks a case skipped because its analyzer is not ported.
var errNotPorted = errors.New("analyzer not ported yet")

func runAnalyzerCase(t *testing.T, dir string) error {
	var c analyzerCase
	if err := readYAML(filepath.Join(dir, "expect.yaml"), &c); err != nil {
		return err
	}
	if c.Match != "multiset" {
		return fmt.Errorf("match %q: this runner compares multisets only", c.Match)
	}
	a, ok := analysis.AnalyzerByName(c.Analyzer)
	if !ok {
		return fmt.Errorf("%s: %w", c.Analyzer, errNotPorted)
	}
	if missing, _ := multisetDiff(c.CodesInScope, a.Codes); len(missing) > 0 {
		return fmt.Errorf("analyzer %s: codes %v in scope upstream are not among the codes it declares, %v", c.Analyzer, missing, a.Codes)
	}
	opts := analysis.LoadOptions{IstioNamespace: c.IstioNamespace}
	if c.MeshConfig != "" {
		opts.MeshConfigFile = filepath.Join(dir, c.MeshConfig)
	}
	snap, err := analysis.Load([]string{filepath.Join(dir, "config.yaml")}, opts)
	if err != nil {
		return err
	}
	for _, e := range snap.Errors {
		t.Logf("input not read: %v", e)
	}
	msgs, err := analysis.Run(snap, analysis.RunOptions{Analyzers: []string{c.Analyzer}, IstioNamespace: c.IstioNamespace})
	if err != nil {
		return err
	}
	var got, want []string
	for _, m := range msgs {
		t.Logf("got: %s", m)
		got = append(got, messageKey(m))
	}
	for _, m := range c.Expected {
		want = append(want, m.key())
	}
	if missing, extra := multisetDiff(want, got); len(missing)+len(extra) > 0 {
		return fmt.Errorf("analyzer %s: missing %q, unexpected %q", c.Analyzer, missing, extra)
	}
	return nil
}

func messageKey(m analysis.Message) string {
	am := analyzerMessage{Code: m.Code(), Type: m.Type.Name, Level: m.Level().String(), Kind: m.Resource.Kind, Name: m.Resource.Name}
	if m.Resource.Namespace != "" {
		am.Namespace = &m.Resource.Namespace
	}
	return am.key()
}

// multisetDiff returns the items of want not in got and of got not in
// want, counting duplicates.
func multisetDiff(want, got []string) (missing, extra []string) {
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	for k, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}
