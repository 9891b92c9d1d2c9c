package cniplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// plugin is the sluice binary as the runtime finds it: sluice-cni in a
// CNI bin directory.
func plugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, BinaryName)
	if err := os.Symlink(testenv.Binary(t), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// agent serves events on a socket in a temporary directory; refuse makes
// it refuse every ADD.
type agent struct {
	socket string
	mu     sync.Mutex
	adds   []Event
	dels   []Event
	refuse error
}

func startAgent(t *testing.T) *agent {
	t.Helper()
	a := &agent{socket: filepath.Join(t.TempDir(), "agent.sock")}
	l, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go Serve(l, ServeOptions{
		Add: func(_ context.Context, e Event) error {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.adds = append(a.adds, e)
			return a.refuse
		},
		Del: func(_ context.Context, e Event) error {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.dels = append(a.dels, e)
			return nil
		},
	})
	return a
}

const prevResult = `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/pod-a"}],` +
	`"ips":[{"address":"10.244.1.7/24","gateway":"10.244.1.1","interface":0}]}`

// runPlugin runs the plugin as the runtime does (CNI_* environment, the
// network configuration with the previous plugin's result on stdin).
func runPlugin(t *testing.T, bin, command, socket, podNS string) (stdout string, err error) {
	t.Helper()
	conf := `{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"sluice-cni","agent_socket":"` + socket +
		`","exclude_namespaces":["kube-system"],"prevResult":` + prevResult + `}`
	cmd := exec.Command(bin)
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=abc123", "CNI_NETNS=/var/run/netns/pod-a",
		"CNI_IFNAME=eth0", "CNI_PATH=" + filepath.Dir(bin),
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=" + podNS + ";K8S_POD_NAME=web-0;K8S_POD_UID=uid-1;K8S_POD_INFRA_CONTAINER_ID=abc123"}
	cmd.Stdin = strings.NewReader(conf)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	if err != nil {
		err = errors.Join(err, errors.New(out.String()+stderr.String()))
	}
	return out.String(), err
}

// TestPluginAdd: ADD for a pod reaches the agent with the pod's netns,
// name, namespace, uid and addresses, and the plugin prints the previous
// result unchanged (a chained plugin); DEL reaches it too; a pod of an
// excluded namespace passes without asking; VERSION answers.
func TestPluginAdd(t *testing.T) {
	bin := plugin(t)
	a := startAgent(t)
	out, err := runPlugin(t, bin, "ADD", a.socket, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	json.Unmarshal([]byte(out), &got)
	json.Unmarshal([]byte(prevResult), &want)
	if g, w := mustJSON(got["ips"]), mustJSON(want["ips"]); g != w {
		t.Errorf("result ips %s, want %s (output %s)", g, w, out)
	}
	a.mu.Lock()
	if len(a.adds) != 1 || a.adds[0].Netns != "/var/run/netns/pod-a" || a.adds[0].PodName != "web-0" ||
		a.adds[0].PodNamespace != "shop" || a.adds[0].PodUID != "uid-1" || strings.Join(a.adds[0].IPs, ",") != "10.244.1.7" {
		t.Errorf("agent got %+v", a.adds)
	}
	a.mu.Unlock()
	if _, err := runPlugin(t, bin, "DEL", a.socket, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := runPlugin(t, bin, "ADD", a.socket, "kube-system"); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	if len(a.adds) != 1 || len(a.dels) != 1 {
		t.Errorf("after DEL and an excluded ADD: adds %d, dels %d", len(a.adds), len(a.dels))
	}
	a.mu.Unlock()
	if out, err := runPlugin(t, bin, "VERSION", a.socket, "shop"); err != nil || !strings.Contains(out, "supportedVersions") {
		t.Errorf("VERSION: %q %v", out, err)
	}
}

// TestPluginFailsClosed: when the agent refuses the pod, or is not
// there, ADD fails with a CNI error naming the pod and the reason (the
// runtime does not start the pod); DEL still succeeds.
func TestPluginFailsClosed(t *testing.T) {
	bin := plugin(t)
	a := startAgent(t)
	a.refuse = errors.New("capture failed: no such netns")
	out, err := runPlugin(t, bin, "ADD", a.socket, "shop")
	if err == nil || !strings.Contains(err.Error(), "shop/web-0") || !strings.Contains(err.Error(), "capture failed") {
		t.Errorf("refused ADD: %v (out %q)", err, out)
	}
	gone := filepath.Join(t.TempDir(), "none.sock")
	if _, err := runPlugin(t, bin, "ADD", gone, "shop"); err == nil {
		t.Error("ADD with no agent succeeded")
	}
	if _, err := runPlugin(t, bin, "DEL", gone, "shop"); err != nil {
		t.Errorf("DEL with no agent: %v", err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
