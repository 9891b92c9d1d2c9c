package conformance

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// Group turns the cases of one corpus group into running meshes. The
// checks are evaluated by the generic runner; a group only says how a case
// is set up, where its requests enter, and what it cannot run yet.
type Group interface {
	// Name is the group's folder in the corpus, such as "istio-tasks".
	Name() string
	// Load reads the group-specific files of a case into c.Data.
	Load(c *Case) error
	// Unsupported returns why this runner cannot run ch yet, judged from
	// the data alone, or "" when it can.
	Unsupported(c *Case, ch *Check) string
	// Setup starts everything the case needs and returns where to send its
	// checks. It may fail the test.
	Setup(t *testing.T, c *Case) Env
}

// Env is a case's running mesh, as the runner uses it.
type Env interface {
	// Send sends one request of ch and returns what came back.
	Send(ch *Check) (*testenv.Response, error)
	// FractionKey is the key a response counts under in expect.fractions.
	FractionKey(r *testenv.Response) string
	// Describe says in words what Send sends for ch, for messages.
	Describe(ch *Check) string
}

// observer is an Env that also judges what a check's requests did
// elsewhere than in their responses (copies mirrored to other workloads):
// Observe sends what it needs and returns the problems found.
type observer interface {
	Observe(ch *Check) []string
}

// preparer is an Env that runs a check's before actions (deleting a
// resource, ...) itself; the group's Unsupported says which it can run.
type preparer interface {
	Before(ch *Check) error
}

// loader is an Env that runs a check's load block (upstream's fortio
// runs) and reads the statistics of the proxy the load leaves by; the
// group's Unsupported says which load runs it can do.
type loader interface {
	// RunLoad runs ch's load and returns how many responses had each
	// status code (-1: requests without a response).
	RunLoad(ch *Check) (map[int]int, error)
	// ProxyStat reads the statistic name of cluster from the proxy that
	// ch's requests leave by (Envoy's "cluster.<cluster>.<name>").
	ProxyStat(ch *Check, cluster, name string) (float64, error)
}

// loadAttempts is how many times a load run is repeated until it meets its
// expectations: what a circuit breaker lets through depends on timing, and
// upstream's own page says its numbers vary from run to run.
const loadAttempts = 3

// convergeTimeout is how long the first request of a check is retried until
// it meets the check's per-response expectations, before the check's real
// requests are sent.
const convergeTimeout = 10 * time.Second

// Tally counts check results.
type Tally struct {
	mu                      sync.Mutex
	passed, failed, skipped int
}

func (t *Tally) add(passed, failed, skipped int) {
	t.mu.Lock()
	t.passed += passed
	t.failed += failed
	t.skipped += skipped
	t.mu.Unlock()
}

func (t *Tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%d passed, %d failed, %d skipped", t.passed, t.failed, t.skipped)
}

// runGroup runs every case of g, one sub-test per case and one per check,
// logs the totals and compares the passed count with the group's floor.
func runGroup(t *testing.T, g Group) {
	dir := filepath.Join(corpusDir(t), corpusOf(g))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		missing(t, fmt.Sprintf("conformance group %s not found at %s", g.Name(), dir))
	}
	cases, err := loadCases(dir)
	if err != nil {
		t.Fatalf("conformance %s: %v", g.Name(), err)
	}
	total := &Tally{}
	for _, c := range cases {
		variants := variantCases(c)
		t.Run(c.Name, func(t *testing.T) {
			ct := &Tally{}
			defer func() {
				t.Logf("case %s: %s", c.Name, ct)
				total.add(ct.passed, ct.failed, ct.skipped)
			}()
			if len(c.Checks) > 0 {
				runCase(t, g, c, ct)
			}
			for _, vc := range variants {
				t.Run("variant-"+vc.Variant.Name, func(t *testing.T) { runCase(t, g, vc, ct) })
			}
		})
	}
	summary := fmt.Sprintf("conformance %s: %s", g.Name(), total)
	t.Log(summary)
	fmt.Println(summary)
	checkFloor(t, g.Name(), total)
}

// corpusOf is the corpus folder group g runs: its name, unless it runs
// another group's cases another way (istio-tasks-kubernetes).
func corpusOf(g Group) string {
	if c, ok := g.(interface{ Corpus() string }); ok {
		return c.Corpus()
	}
	return g.Name()
}

func runCase(t *testing.T, g Group, c *Case, ct *Tally) {
	if err := g.Load(c); err != nil {
		ct.add(0, len(c.Checks), 0)
		t.Fatalf("load case: %v", err)
	}
	reasons := make([]string, len(c.Checks))
	runnable := 0
	for i, ch := range c.Checks {
		if reasons[i] = g.Unsupported(c, ch); reasons[i] == "" {
			runnable++
		}
	}
	if runnable == 0 {
		for i, ch := range c.Checks {
			t.Run(checkName(ch), func(t *testing.T) {
				ct.add(0, 0, 1)
				t.Skip("SKIPPED: " + reasons[i])
			})
		}
		return
	}
	// A setup failure ends this function through t.FailNow; the runnable
	// checks then count as failed, the others as skipped.
	ready := false
	defer func() {
		if !ready {
			ct.add(0, runnable, len(c.Checks)-runnable)
		}
	}()
	env := g.Setup(t, c)
	ready = true
	for i, ch := range c.Checks {
		t.Run(checkName(ch), func(t *testing.T) {
			if reasons[i] != "" {
				ct.add(0, 0, 1)
				t.Skip("SKIPPED: " + reasons[i])
			}
			start := time.Now()
			if b, ok := env.(preparer); ok && len(ch.Before) > 0 {
				if err := b.Before(ch); err != nil {
					ct.add(0, 1, 0)
					t.Errorf("FAILED: before actions of %s: %v", env.Describe(ch), err)
					return
				}
			}
			var problems []string
			if ch.Load != nil {
				var notes []string
				problems, notes = runLoad(env, ch)
				for _, n := range notes {
					t.Log(n)
				}
			} else {
				problems = runCheck(env, ch)
			}
			took := time.Since(start).Round(time.Millisecond)
			if len(problems) > 0 {
				ct.add(0, 1, 0)
				t.Errorf("FAILED (%v): %s\n  %s", took, env.Describe(ch), strings.Join(problems, "\n  "))
				return
			}
			ct.add(1, 0, 0)
			t.Logf("passed (%v): %s", took, env.Describe(ch))
		})
	}
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9]+`)

func checkName(ch *Check) string {
	name := strings.Trim(nonName.ReplaceAllString(ch.Name, "-"), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	if ch.Variant != "" {
		return fmt.Sprintf("%s-%d-%s", ch.Variant, ch.ID, name)
	}
	return fmt.Sprintf("%d-%s", ch.ID, name)
}

// runCheck waits for the check's first response to come out right (the
// configuration may still be on its way), then sends its requests and
// returns every way they fell short of expect.
func runCheck(env Env, ch *Check) []string {
	deadline := time.Now().Add(convergeTimeout)
	for {
		r, err := env.Send(ch)
		if len(evalResponse(ch, r, err)) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	attempts := max(ch.MaxAttempts, 1)
	var problems []string
	for a := 1; a <= attempts; a++ {
		problems = sample(env, ch)
		if x, ok := env.(observer); ok && len(problems) == 0 {
			problems = x.Observe(ch)
		}
		if len(problems) == 0 {
			return nil
		}
		if attempts > 1 {
			problems = append(problems, fmt.Sprintf("(attempt %d of %d)", a, attempts))
		}
	}
	return problems
}

// sample sends the check's requests and evaluates them.
func sample(env Env, ch *Check) []string {
	n := max(ch.Repeat, 1)
	var problems []string
	failed, firstBad := 0, -1
	var firstProblems []string
	var firstResp *testenv.Response
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r, err := env.Send(ch)
		if r != nil {
			counts[env.FractionKey(r)]++
		}
		p := evalResponse(ch, r, err)
		if len(p) == 0 || i < ch.AllowFirstFailures {
			continue
		}
		failed++
		if firstBad < 0 {
			firstBad, firstProblems, firstResp = i, p, r
		}
	}
	if failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d responses failed; first (request %d): %s; response: %s",
			failed, n, firstBad+1, strings.Join(firstProblems, "; "), firstResp))
	}
	if len(ch.Expect.Fractions) > 0 {
		problems = append(problems, evalFractions(ch.Expect.Fractions, counts, n)...)
	}
	return problems
}

// runLoad runs ch's load block, up to loadAttempts times until it meets
// expect.status_set, expect.min_count and expect.proxy_stat (the rise of
// the statistic over the run), and returns the problems of the last run
// and a note per run on what it did.
func runLoad(env Env, ch *Check) (problems, notes []string) {
	l, ok := env.(loader)
	if !ok {
		return []string{"this group cannot run load checks"}, nil
	}
	for a := 1; a <= loadAttempts; a++ {
		var note string
		problems, note = loadOnce(l, ch)
		notes = append(notes, fmt.Sprintf("load run %d of at most %d: %s", a, loadAttempts, note))
		if len(problems) == 0 {
			return nil, notes
		}
	}
	return append(problems, fmt.Sprintf("(in each of %d runs)", loadAttempts)), notes
}

func loadOnce(l loader, ch *Check) (problems []string, note string) {
	ps := ch.Expect.ProxyStat
	var before float64
	if ps != nil {
		v, err := l.ProxyStat(ch, ps.Cluster, ps.Name)
		if err != nil {
			return []string{"proxy_stat: " + err.Error()}, "statistic not read"
		}
		before = v
	}
	codes, err := l.RunLoad(ch)
	if err != nil {
		return []string{"load run: " + err.Error()}, "failed to run"
	}
	note = formatCodes(codes)
	if len(ch.Expect.ObservedUpstream) > 0 {
		var printed []string
		for _, k := range slices.Sorted(maps.Keys(ch.Expect.ObservedUpstream)) {
			printed = append(printed, fmt.Sprintf("%s: %d", k, ch.Expect.ObservedUpstream[k]))
		}
		note += fmt.Sprintf(" (upstream's page printed %s for one run; information only)", strings.Join(printed, ", "))
	}
	problems = evalLoad(ch.Expect, codes)
	if ps != nil {
		after, err := l.ProxyStat(ch, ps.Cluster, ps.Name)
		if err != nil {
			return append(problems, "proxy_stat: "+err.Error()), note
		}
		rise := after - before
		note += fmt.Sprintf("; cluster.%s.%s rose by %v to %v", ps.Cluster, ps.Name, rise, after)
		if rise < ps.Min {
			problems = append(problems, fmt.Sprintf("cluster.%s.%s rose by %v over the run, want at least %v",
				ps.Cluster, ps.Name, rise, ps.Min))
		}
	}
	return problems, note
}
