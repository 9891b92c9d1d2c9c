package cniplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	cniv1 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// BinaryName is the plugin's name in the CNI config and in the CNI bin
// directory: the sluice binary run under this name is the plugin.
const BinaryName = "sluice-cni"

// Config is the plugin's entry in the chained CNI config.
type Config struct {
	types.NetConf
	// AgentSocket is the node agent's socket (DefaultSocket).
	AgentSocket string `json:"agent_socket"`
	// ExcludeNamespaces are passed through without asking the agent
	// (istio-cni's exclude_namespaces: kube-system and its own).
	ExcludeNamespaces []string `json:"exclude_namespaces"`
}

// k8sArgs are the runtime's CNI_ARGS for a Kubernetes pod.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // the runtime's names
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
}

// Main runs the plugin (the process was started by the runtime as
// BinaryName) and returns the exit code.
func Main() int {
	funcs := skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck}
	if err := skel.PluginMainFuncsWithError(funcs, version.All, "sluice-cni: ambient capture by sluice's node agent"); err != nil {
		if perr := err.Print(); perr != nil {
			return 2
		}
		return 1
	}
	return 0
}

func parseConfig(stdin []byte) (*Config, *cniv1.Result, error) {
	var c Config
	if err := json.Unmarshal(stdin, &c); err != nil {
		return nil, nil, fmt.Errorf("sluice-cni: network configuration: %w", err)
	}
	if c.AgentSocket == "" {
		c.AgentSocket = DefaultSocket
	}
	if c.RawPrevResult == nil {
		return &c, nil, nil
	}
	raw, err := json.Marshal(c.RawPrevResult)
	if err != nil {
		return nil, nil, fmt.Errorf("sluice-cni: prevResult: %w", err)
	}
	res, err := version.NewResult(c.CNIVersion, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("sluice-cni: prevResult: %w", err)
	}
	prev, err := cniv1.NewResultFromResult(res)
	if err != nil {
		return nil, nil, fmt.Errorf("sluice-cni: prevResult: %w", err)
	}
	return &c, prev, nil
}

// event reads the pod the runtime is setting up; ok is false for what is
// not a Kubernetes pod or is in an excluded namespace.
func event(args *skel.CmdArgs, c *Config, prev *cniv1.Result) (Event, bool, error) {
	var ka k8sArgs
	if err := types.LoadArgs(args.Args, &ka); err != nil {
		return Event{}, false, fmt.Errorf("sluice-cni: CNI_ARGS: %w", err)
	}
	e := Event{ContainerID: args.ContainerID, Netns: args.Netns, PodName: string(ka.K8S_POD_NAME),
		PodNamespace: string(ka.K8S_POD_NAMESPACE), PodUID: string(ka.K8S_POD_UID)}
	if e.PodName == "" || e.PodNamespace == "" || slices.Contains(c.ExcludeNamespaces, e.PodNamespace) {
		return e, false, nil
	}
	if prev != nil {
		for _, ip := range prev.IPs {
			e.IPs = append(e.IPs, ip.Address.IP.String())
		}
	}
	return e, true, nil
}

// result passes the previous plugin's result on (a chained plugin that
// changes nothing prints what it was given).
func result(c *Config, prev *cniv1.Result) error {
	if prev == nil {
		prev = &cniv1.Result{CNIVersion: c.CNIVersion}
	}
	return types.PrintResult(prev, c.CNIVersion)
}

func cmdAdd(args *skel.CmdArgs) error {
	c, prev, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	e, ok, err := event(args, c, prev)
	if err != nil {
		return err
	}
	if ok {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := send(ctx, c.AgentSocket, AddPath, e); err != nil {
			return fmt.Errorf("sluice-cni: pod %s/%s: %w", e.PodNamespace, e.PodName, err)
		}
	}
	return result(c, prev)
}

// cmdDel tells the agent and never fails: a failed DEL would keep the
// runtime from freeing the sandbox, and the agent also notices the pod
// go through the API.
func cmdDel(args *skel.CmdArgs) error {
	c, prev, err := parseConfig(args.StdinData)
	if err != nil {
		return nil
	}
	if e, ok, _ := event(args, c, prev); ok && e.Netns != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = send(ctx, c.AgentSocket, DelPath, e)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	_, _, err := parseConfig(args.StdinData)
	return err
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
