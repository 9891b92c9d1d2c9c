package nodeagent

import rbacv1 "k8s.io/api/rbac/v1"

// ClusterRoleRules are the permissions the node agent uses: its informers
// (pods, namespaces), the redirection annotation (patched through
// pods/status, as istio-cni), the Events it records on pods whose
// capture it refuses, and its own DaemonSet (read at exit). docs/kubernetes.md lists them for the chart;
// TestKubeAmbientNodeAgent runs the node proxy with exactly these.
var ClusterRoleRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"patch"}},
	{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	// At exit: is the agent's DaemonSet still there (cniinstall.go)?
	{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, Verbs: []string{"get"}},
}
