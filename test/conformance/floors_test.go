package conformance

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// floorsFile holds the committed pass-count floor of each group.
const floorsFile = "floors.yaml"

// inCI reports whether the tests run in CI (CI=true, as CI services set
// it). There a missing corpus and a group below its floor are failures;
// elsewhere the corpus may be absent (a user's fresh clone) and the test
// skips.
func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// loadFloors reads a floors file: group name -> least passed checks.
func loadFloors(path string) (map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conformance floors: %w", err)
	}
	floors := map[string]int{}
	if err := yaml.UnmarshalStrict(data, &floors); err != nil {
		return nil, fmt.Errorf("conformance floors %s: %w", path, err)
	}
	for g, n := range floors {
		if n < 0 {
			return nil, fmt.Errorf("conformance floors %s: %s: floor %d is negative", path, g, n)
		}
	}
	return floors, nil
}

// belowFloor returns an error naming the group, its count and its floor
// when passed is below the group's floor, and nil when it meets it or the
// group has none.
func belowFloor(group string, passed int, floors map[string]int) error {
	floor, ok := floors[group]
	if !ok || passed >= floor {
		return nil
	}
	return fmt.Errorf("conformance %s: %d passed, below the floor of %d in test/conformance/%s",
		group, passed, floor, floorsFile)
}

// subsetSelected reports why only part of a group may have run (a -run
// pattern naming sub-tests, or -skip), or "" when the whole group ran and
// its count can be compared with its floor.
func subsetSelected(run, skip string) string {
	if skip != "" {
		return "-skip " + skip
	}
	if strings.Contains(run, "/") {
		return "-run " + run
	}
	return ""
}

// flagValue is the value of a go test flag such as "test.run", or "".
func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// checkFloor compares a group's tally with its floor once the whole group
// has run: with CI=true a shortfall fails t, elsewhere it is logged.
func checkFloor(t *testing.T, group string, total *Tally) {
	t.Helper()
	if why := subsetSelected(flagValue("test.run"), flagValue("test.skip")); why != "" {
		t.Logf("conformance %s: floor not checked, only part of the group was selected (%s)", group, why)
		return
	}
	floors, err := loadFloors(floorsFile)
	if err != nil {
		t.Fatal(err)
	}
	total.mu.Lock()
	passed := total.passed
	total.mu.Unlock()
	err = belowFloor(group, passed, floors)
	switch {
	case err == nil:
	case inCI():
		t.Error(err)
	default:
		t.Logf("%v (a failure when CI=true)", err)
	}
}

func TestBelowFloor(t *testing.T) {
	floors := map[string]int{"istio-tasks": 45, "gateway-api": 231, "istio-security": 0}
	cases := []struct {
		group   string
		passed  int
		wantErr string
	}{
		{"istio-tasks", 45, ""},
		{"istio-tasks", 48, ""},
		{"istio-tasks", 44, "conformance istio-tasks: 44 passed, below the floor of 45 in test/conformance/floors.yaml"},
		{"gateway-api", 0, "conformance gateway-api: 0 passed, below the floor of 231 in test/conformance/floors.yaml"},
		{"istio-security", 0, ""},
		{"istio-telemetry", 0, ""}, // no floor: not compared
	}
	for _, c := range cases {
		err := belowFloor(c.group, c.passed, floors)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.wantErr {
			t.Errorf("belowFloor(%s, %d) = %q, want %q", c.group, c.passed, got, c.wantErr)
		}
	}
}

func TestSubsetSelected(t *testing.T) {
	cases := []struct{ run, skip, want string }{
		{"", "", ""},
		{"TestIstioTasks", "", ""},
		{"TestGatewayAPI|TestIstioTasks", "", ""},
		{"TestGatewayAPI/cors", "", "-run TestGatewayAPI/cors"},
		{"TestIstioTasks", "circuit", "-skip circuit"},
	}
	for _, c := range cases {
		if got := subsetSelected(c.run, c.skip); got != c.want {
			t.Errorf("subsetSelected(%q, %q) = %q, want %q", c.run, c.skip, got, c.want)
		}
	}
}

// TestFloorsFile checks the committed floors: readable, and only for
// groups this runner runs (a floor nothing enforces would mislead).
func TestFloorsFile(t *testing.T) {
	floors, err := loadFloors(floorsFile)
	if err != nil {
		t.Fatal(err)
	}
	for g := range floors {
		if !hasRunner(g) {
			t.Errorf("%s: floor for group %q, which has no runner (runners: %v)", floorsFile, g, runnerNames())
		}
	}
	for _, g := range runnerNames() {
		if _, ok := floors[g]; !ok {
			t.Errorf("%s: group %q has a runner but no floor", floorsFile, g)
		}
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "floors.yaml")
	for _, data := range []string{"istio-tasks: -1\n", "istio-tasks: many\n", "- istio-tasks\n"} {
		if err := os.WriteFile(bad, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadFloors(bad); err == nil {
			t.Errorf("loadFloors(%q) accepted it", data)
		}
	}
}

// TestCorpusGroups reports the corpus groups that have no runner yet as
// not run, so that a summary never reads as if they had passed.
func TestCorpusGroups(t *testing.T) {
	dir := corpusDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var notRun []string
	for _, e := range entries {
		if e.IsDir() && e.Name()[0] != '.' && e.Name()[0] != '_' && !hasRunner(e.Name()) {
			notRun = append(notRun, e.Name())
		}
	}
	sort.Strings(notRun)
	for _, g := range notRun {
		line := fmt.Sprintf("conformance %s: not run (no runner yet; no floor)", g)
		t.Log(line)
		fmt.Println(line)
	}
}
