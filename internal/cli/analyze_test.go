package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// A VirtualService bound to a Gateway that does not exist (IST0101, Error),
// and a Service whose port name names no protocol (IST0118, Info).
const analyzeBadVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews.example.com
  gateways:
  - missing-gw
  http:
  - route:
    - destination:
        host: reviews
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  selector:
    app: reviews
  ports:
  - name: foo
    port: 9080
`

const analyzeInfoOnly = `apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: default
spec:
  selector:
    app: ratings
  ports:
  - name: foo
    port: 9080
`

const analyzeClean = `apiVersion: v1
kind: Service
metadata:
  name: details
spec:
  selector:
    app: details
  ports:
  - name: http
    port: 9080
`

type analyzeRun struct {
	stdout, stderr string
	code           int
}

func runAnalyze(t *testing.T, args ...string) analyzeRun {
	t.Helper()
	return runAnalyzeStdin(t, "", args...)
}

func runAnalyzeStdin(t *testing.T, stdin string, args ...string) analyzeRun {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), append([]string{"analyze"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return analyzeRun{out.String(), errOut.String(), code}
}

func writeAnalyzeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAnalyzeFolderText(t *testing.T) {
	dir := t.TempDir()
	bad := writeAnalyzeFile(t, dir, "reviews.yaml", analyzeBadVS)
	writeAnalyzeFile(t, dir, "details.yaml", analyzeClean)
	writeAnalyzeFile(t, dir, "notes.txt", "not yaml: [")
	r := runAnalyze(t, dir)
	if r.code != exitAnalyzerFoundIssues {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitAnalyzerFoundIssues, r.stderr)
	}
	want := `Error [IST0101] (VirtualService default/reviews ` + bad + `:9) Referenced gateway not found: "missing-gw"` + "\n" +
		`Warning [IST0132] (VirtualService default/reviews ` + bad + `:9) one or more host [reviews.example.com] defined in VirtualService default/reviews not found in Gateway default/missing-gw.` + "\n" +
		`Info [IST0118] (Service default/reviews ` + bad + `:24) Port name foo (port: 9080, targetPort: 0) doesn't follow the naming convention of Istio port.` + "\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "analyzers found issues when analyzing namespace: default") {
		t.Errorf("stderr %q does not say why the status is non-zero", r.stderr)
	}
	if !strings.Contains(r.stderr, "Skipping file "+filepath.Join(dir, "notes.txt")+", recognized file extensions are: [.json .yaml .yml]") {
		t.Errorf("stderr %q does not name the skipped file", r.stderr)
	}
}

func TestAnalyzeStdin(t *testing.T) {
	r := runAnalyzeStdin(t, analyzeBadVS, "--output-threshold", "Error", "-")
	want := `Error [IST0101] (VirtualService default/reviews -:9) Referenced gateway not found: "missing-gw"` + "\n"
	if r.code != exitAnalyzerFoundIssues || r.stdout != want {
		t.Errorf("exit %d, stdout %q; want %d, %q", r.code, r.stdout, exitAnalyzerFoundIssues, want)
	}
}

func TestAnalyzeJSON(t *testing.T) {
	dir := t.TempDir()
	bad := writeAnalyzeFile(t, dir, "reviews.yaml", analyzeBadVS)
	r := runAnalyze(t, "-o", "json", "--output-threshold", "Warning", bad)
	if r.code != exitAnalyzerFoundIssues {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitAnalyzerFoundIssues, r.stderr)
	}
	var got []jsonMessage
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON list: %v\n%s", err, r.stdout)
	}
	want := []jsonMessage{
		{Code: "IST0101", Level: "Error", Resource: "VirtualService default/reviews", Message: `Referenced gateway not found: "missing-gw"`, Origin: bad + ":9"},
		{Code: "IST0132", Level: "Warning", Resource: "VirtualService default/reviews",
			Message: "one or more host [reviews.example.com] defined in VirtualService default/reviews not found in Gateway default/missing-gw.", Origin: bad + ":9"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d (the Info one is under the output threshold): %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAnalyzeExitCodes(t *testing.T) {
	dir := t.TempDir()
	info := writeAnalyzeFile(t, dir, "ratings.yaml", analyzeInfoOnly)
	clean := writeAnalyzeFile(t, dir, "details.yaml", analyzeClean)
	bad := writeAnalyzeFile(t, dir, "reviews.yaml", analyzeBadVS)
	broken := writeAnalyzeFile(t, dir, "broken.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  hosts: 7\n")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring; "" means empty
		stderr string // substring
	}{
		{"clean", []string{clean}, 0, "", "\u2714 No validation issues found when analyzing " + clean + "."},
		{"info under the default failure threshold", []string{info}, 0, "Info [IST0118]", ""},
		{"info at --failure-threshold Info", []string{"--failure-threshold", "Info", info}, exitAnalyzerFoundIssues, "Info [IST0118]", ""},
		{"suppressed", []string{"-S", "IST0101=VirtualService default/reviews", "-S", "IST0132=VirtualService default/*", "--output-threshold", "Warning", bad}, 0, "", "No validation issues"},
		{"other namespace", []string{"-n", "prod", "--output-threshold", "Error", bad}, exitAnalyzerFoundIssues, "VirtualService prod/reviews", ""},
		{"one analyzer", []string{"--analyzer", "service.PortNameAnalyzer", bad}, 0, "Info [IST0118]", ""},
		{"unknown analyzer", []string{"--analyzer", "nope.Analyzer", bad}, exitIncorrectUsage, "", `analyzer "nope.Analyzer": no such analyzer`},
		{"unparseable document", []string{clean, broken}, exitDataError, "", "Error(s) adding files: " + broken + ":1"},
		{"kubeconfig", []string{"--kubeconfig", "/dev/null", clean}, exitIncorrectUsage, "", "not built yet"},
		{"bad threshold", []string{"--failure-threshold", "Fatal", clean}, exitIncorrectUsage, "", "want Info, Warning or Error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runAnalyze(t, c.args...)
			if r.code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			if c.stdout == "" && r.stdout != "" || !strings.Contains(r.stdout, c.stdout) {
				t.Errorf("stdout %q, want %q", r.stdout, c.stdout)
			}
			if !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, c.stderr)
			}
		})
	}
}
