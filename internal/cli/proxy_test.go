package cli

import (
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// TestInboundPairs: repeated --inbound-address/--app-address flags pair
// by order; the single pair reads as before; a mismatch is an error.
func TestInboundPairs(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		want    []model.InboundPort
		wantErr string
	}{
		{name: "none", args: nil},
		{name: "single pair", args: []string{"--inbound-address", "127.0.0.1:20001", "--app-address", "127.0.0.1:30001"},
			want: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}}},
		{name: "pairs by order", args: []string{"--inbound-address", "127.0.0.1:20001", "--inbound-address", "127.0.0.1:20002",
			"--app-address", "127.0.0.1:30001", "--app-address", "127.0.0.1:30002"},
			want: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}},
		{name: "missing app", args: []string{"--inbound-address", "127.0.0.1:20001", "--inbound-address", "127.0.0.1:20002",
			"--app-address", "127.0.0.1:30001"}, wantErr: "2 inbound addresses, 1 app addresses"},
		{name: "twice", args: []string{"--inbound-address", "127.0.0.1:20001", "--inbound-address", "127.0.0.1:20001",
			"--app-address", "127.0.0.1:30001", "--app-address", "127.0.0.1:30002"}, wantErr: "given twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newProxyCommand()
			if err := cmd.Flags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			in, _ := cmd.Flags().GetStringArray("inbound-address")
			app, _ := cmd.Flags().GetStringArray("app-address")
			got, err := inboundPorts(in, app)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
}

// Bad --xds-protocol and --xds-max-message-bytes values are refused by
// name before the proxy starts.
func TestProxyXDSFlagsChecked(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--xds-protocol", "incremental"}, `--xds-protocol: xds protocol "incremental": must be delta, sotw or auto`},
		{[]string{"--xds-max-message-bytes", "0"}, "--xds-max-message-bytes 0: must be positive"},
	} {
		cmd := newProxyCommand()
		cmd.SetArgs(append([]string{"--name", "web"}, tc.args...))
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		if err == nil || err.Error() != tc.wantErr {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
		}
	}
}

// TestInterceptionModeFlag: --interception-mode takes NONE (default) or
// REDIRECT; REDIRECT is for sidecars and excludes local mode's outbound
// listeners (given explicitly), and TPROXY or anything else is refused.
func TestInterceptionModeFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    model.InterceptionMode
		wantErr string
	}{
		{args: nil, want: model.InterceptionNone},
		{args: []string{"--interception-mode", "REDIRECT"}, want: model.InterceptionRedirect},
		{args: []string{"--interception-mode", "REDIRECT", "--outbound-address", "127.0.0.1:15001"}, wantErr: "--outbound-address"},
		{args: []string{"--interception-mode", "REDIRECT", "--outbound-tcp-ip", "127.0.0.2"}, wantErr: "--outbound-tcp-ip"},
		{args: []string{"--interception-mode", "REDIRECT", "--type", "router"}, wantErr: "only a sidecar is captured"},
		{args: []string{"--interception-mode", "TPROXY"}, wantErr: "TPROXY is not implemented"},
		{args: []string{"--interception-mode", "redirect"}, wantErr: "must be NONE or REDIRECT"},
	} {
		cmd := newProxyCommand()
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		v, _ := cmd.Flags().GetString("interception-mode")
		typ, _ := cmd.Flags().GetString("type")
		tcpIP, _ := cmd.Flags().GetString("outbound-tcp-ip")
		got, err := interceptionMode(cmd, v, typ, tcpIP)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: got %q %v, want %q", tc.args, got, err, tc.want)
		}
	}
}

// TestProxyConcurrency: --concurrency given is taken as asked (0 = every
// core); not given it is Istio's 2, unless GOMAXPROCS in the environment
// or a lower runtime default (a CPU limit) says otherwise.
func TestProxyConcurrency(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for _, tc := range []struct {
		args    []string
		env     string
		runtime int
		want    int
		wantErr string
	}{
		{args: nil, runtime: 8, want: 2},
		{args: nil, runtime: 1, want: 1},
		{args: nil, env: "3", runtime: 3, want: 3},
		{args: []string{"--concurrency", "4"}, runtime: 1, want: 4},
		{args: []string{"--concurrency", "0"}, runtime: 1, want: runtime.NumCPU()},
		{args: []string{"--concurrency", "-1"}, runtime: 1, wantErr: "--concurrency -1: must be 0 (every core) or more"},
	} {
		t.Setenv("GOMAXPROCS", tc.env)
		runtime.GOMAXPROCS(tc.runtime)
		cmd := newProxyCommand()
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		n, _ := cmd.Flags().GetInt("concurrency")
		got, err := proxyConcurrency(cmd, n)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v (GOMAXPROCS=%q, runtime %d): %d, %v; want %d", tc.args, tc.env, tc.runtime, got, err, tc.want)
		}
	}
}

// --gc-percent sets the proxy's GOGC: 75 by default, an explicit GOGC in
// the environment wins over the default but not over the flag.
func TestProxyGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		args    []string
		env     string
		want    int // what the collector is left at (it starts at 100)
		wantErr string
	}{
		{args: nil, want: DefaultGCPercent},
		{args: nil, env: "200", want: 100},
		{args: []string{"--gc-percent", "50"}, env: "200", want: 50},
		{args: []string{"--gc-percent", "0"}, wantErr: "--gc-percent 0: must be positive"},
	} {
		t.Setenv("GOGC", tc.env)
		debug.SetGCPercent(100)
		cmd := newProxyCommand()
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		n, _ := cmd.Flags().GetInt("gc-percent")
		err := applyGCPercent(cmd, n)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if got := debug.SetGCPercent(100); err != nil || got != tc.want {
			t.Errorf("%v (GOGC=%q): GC percent %d, %v; want %d", tc.args, tc.env, got, err, tc.want)
		}
	}
}
