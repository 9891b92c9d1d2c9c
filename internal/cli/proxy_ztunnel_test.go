package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeAgentFlags: --kubeconfig and --node start the node agent of a
// ztunnel, --node defaults to env NODE_NAME, a half-given pair is an
// error naming what is missing, and other proxy types refuse both.
func TestNodeAgentFlags(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("NODE_NAME", "node-7")
	cmd := newProxyCommand()
	if v, _ := cmd.Flags().GetString("node"); v != "node-7" {
		t.Errorf("--node default %q, want env NODE_NAME node-7", v)
	}
	cmd.SetArgs([]string{"--name", "web", "--kubeconfig", "/x"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "are for --type ztunnel") {
		t.Errorf("sidecar with --kubeconfig: %v", err)
	}

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"+
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"), 0o600)
	for _, tc := range []struct {
		a       ztunnelArgs
		agent   bool
		wantErr string
	}{
		{a: ztunnelArgs{}, agent: false},
		{a: ztunnelArgs{inpod: []string{"a/b=/x"}, node: "n"}, agent: false},
		{a: ztunnelArgs{kubeconfig: kc, node: "n"}, agent: true},
		{a: ztunnelArgs{kubeconfig: kc}, wantErr: "needs --node"},
		{a: ztunnelArgs{node: "n"}, wantErr: "--node n: give --kubeconfig"},
		{a: ztunnelArgs{kubeconfig: "/does/not/exist", node: "n"}, wantErr: "--kubeconfig /does/not/exist"},
	} {
		cfg, err := nodeAgentConfig(tc.a)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: error %v, want %q", tc.a, err, tc.wantErr)
			}
			continue
		}
		if err != nil || (cfg != nil) != tc.agent {
			t.Errorf("%+v: config %v, error %v; want agent %v", tc.a, cfg != nil, err, tc.agent)
		}
	}
}
