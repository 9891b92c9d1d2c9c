package cli

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice-mesh/sluice/pkg/kube/install"
)

// TestInstalledArgsAreSluiceFlags: every container the chart runs
// (control plane, gateways, the ambient profile's node proxy) passes
// flags this binary's commands accept.
func TestInstalledArgsAreSluiceFlags(t *testing.T) {
	for profile, want := range map[string]int{"demo": 3, "ambient": 2} {
		m, err := install.Render(install.RenderOptions{Set: []string{"profile=" + profile}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range m.Objects {
			if o.GetKind() != "Deployment" && o.GetKind() != "DaemonSet" {
				continue
			}
			for _, list := range []string{"initContainers", "containers"} {
				cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", list)
				for _, c := range cs {
					checkSluiceArgs(t, o.GetName(), c.(map[string]any))
					n++
				}
			}
		}
		if n != want {
			t.Errorf("profile %s: %d containers checked, want %d", profile, n, want)
		}
	}
}

// checkSluiceArgs parses a container's args with this binary's commands.
func checkSluiceArgs(t *testing.T, owner string, c map[string]any) {
	t.Helper()
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	cmd, rest, err := newRootCommand().Find(args)
	if err != nil || cmd.Name() != args[0] {
		t.Fatalf("%s: %v: command %v", owner, args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: sluice %s: %v", owner, args[0], err)
	}
}

// TestInstallAsksFirst: without -y install shows what it would apply and
// applies nothing unless the answer is yes; --dry-run never applies. The
// kubeconfig names no reachable server, so any contact would fail.
func TestInstallAsksFirst(t *testing.T) {
	run := func(stdin string, args ...string) (string, error) {
		cmd := newRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetIn(strings.NewReader(stdin))
		cmd.SetArgs(append([]string{"install", "--kubeconfig", "/nonexistent/kubeconfig"}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("", "--dry-run", "--set", "profile=demo")
	if err != nil || !strings.Contains(out, "profile demo, revision default") || !strings.Contains(out, "Deployment: istio-egressgateway, istio-ingressgateway, istiod") || !strings.Contains(out, "dry run: nothing applied") {
		t.Errorf("--dry-run: %v\n%s", err, out)
	}
	for _, answer := range []string{"", "n\n", "nope\n"} {
		out, err = run(answer)
		if err == nil || !strings.Contains(err.Error(), "cancelled") || !strings.Contains(out, "Proceed? (y/N)") {
			t.Errorf("answer %q: %v\n%s", answer, err, out)
		}
	}
	// A yes goes on to the cluster: here the missing kubeconfig.
	if _, err = run("y\n"); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("answer y: %v, want the kubeconfig error", err)
	}
	if _, err = run("", "--set", "profile=ambient", "--revision", "canary", "-y"); err == nil || !strings.Contains(err.Error(), "ztunnel with revision canary") {
		t.Errorf("ambient with a revision: %v", err)
	}
}

// TestManifestGenerateIsInstallsRender: manifest generate prints the
// objects install applies.
func TestManifestGenerateIsInstallsRender(t *testing.T) {
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"manifest", "generate", "--set", "profile=minimal", "-r", "canary"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	m, err := install.Render(install.RenderOptions{Set: []string{"profile=minimal"}, Revision: "canary", DefaultTag: install.ImageTag()})
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("manifest generate differs from the render install applies")
	}
	if !strings.Contains(out.String(), "name: istiod-canary") || !strings.Contains(out.String(), "sluice:"+install.ImageTag()) {
		t.Errorf("manifest generate lacks istiod-canary or this build's image tag")
	}
}
