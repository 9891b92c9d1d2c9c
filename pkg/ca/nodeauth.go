package ca

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// A node proxy (ztunnel) holds the certificates of the pods on its node:
// it asks for another identity by sending it as the request's metadata
// ImpersonatedIdentity, and the CA signs it only if the caller is a
// trusted node account and a pod of that identity runs on the caller's
// own node, as istiod's ClusterNodeAuthorizer, a subset of Kubernetes'
// Node authorization (security/pkg/server/ca/node_auth.go, server.go).

// ImpersonatedIdentity is the certificate request metadata key naming
// the identity asked for on another's behalf (istio's
// security.ImpersonatedIdentity; ztunnel's caclient.rs sends it).
const ImpersonatedIdentity = "ImpersonatedIdentity"

// DefaultTrustedNodeAccounts are the service accounts that may
// impersonate: the ztunnel DaemonSet's (istiod's chart sets
// CA_TRUSTED_NODE_ACCOUNTS to <namespace>/ztunnel).
var DefaultTrustedNodeAccounts = []string{"istio-system/ztunnel"}

// EnvTrustedNodeAccounts is istiod's variable for the trusted accounts.
const EnvTrustedNodeAccounts = "CA_TRUSTED_NODE_ACCOUNTS"

// impersonationRefused is istiod's answer to a refused impersonation:
// opaque to the caller (it would learn which pods run where), the reason
// in the CA's log.
const impersonationRefused = "request impersonation authentication failure"

// ParseTrustedNodeAccounts reads namespace/name,... as istiod reads
// CA_TRUSTED_NODE_ACCOUNTS; unlike istiod, a malformed entry is an
// error, not skipped.
func ParseTrustedNodeAccounts(list []string) ([]types.NamespacedName, error) {
	var out []types.NamespacedName
	for _, v := range list {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		ns, name, ok := strings.Cut(v, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("trusted node account %q is not <namespace>/<service account>", v)
		}
		out = append(out, types.NamespacedName{Namespace: ns, Name: name})
	}
	return out, nil
}

// TrustedNodeAccountsFromEnv is CA_TRUSTED_NODE_ACCOUNTS split on commas,
// or DefaultTrustedNodeAccounts when it is not set.
func TrustedNodeAccountsFromEnv() []string {
	v, ok := os.LookupEnv(EnvTrustedNodeAccounts)
	if !ok {
		return slices.Clone(DefaultTrustedNodeAccounts)
	}
	return strings.Split(v, ",")
}

// NodeAuthorizer decides whether a node proxy may hold another identity.
// It reads the API server on each decision (a Get of the caller's pod and
// a List with a field selector), so a pod just scheduled counts at once;
// a node proxy asks once per identity per certificate lifetime.
type NodeAuthorizer struct {
	Client kubernetes.Interface
	// Trusted are the service accounts that may impersonate.
	Trusted []types.NamespacedName
}

// Authorize says why caller may not hold ns/sa on another's behalf, or
// nil when a pod of ns/sa runs on the node of the caller's pod.
func (n *NodeAuthorizer) Authorize(ctx context.Context, caller Caller, ns, sa string) error {
	self := types.NamespacedName{Namespace: caller.Namespace, Name: caller.ServiceAccount}
	if caller.Any || !slices.Contains(n.Trusted, self) {
		return fmt.Errorf("caller (%s) is not allowed to impersonate", caller)
	}
	if caller.PodName == "" {
		return fmt.Errorf("caller (%s) is not allowed to impersonate: its token is not bound to a pod", caller)
	}
	pod, err := n.Client.CoreV1().Pods(caller.Namespace).Get(ctx, caller.PodName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("pod %s/%s not found", caller.Namespace, caller.PodName)
	}
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", caller.Namespace, caller.PodName, err)
	}
	if caller.PodUID != "" && pod.UID != types.UID(caller.PodUID) {
		return fmt.Errorf("pod found, but UID does not match: %v vs %v", pod.UID, caller.PodUID)
	}
	if pod.Spec.ServiceAccountName != caller.ServiceAccount {
		return fmt.Errorf("pod found, but ServiceAccount does not match: %v vs %v", pod.Spec.ServiceAccountName, caller.ServiceAccount)
	}
	node := pod.Spec.NodeName
	if node == "" {
		return fmt.Errorf("pod %s/%s is not scheduled to a node", caller.Namespace, caller.PodName)
	}
	// istiod's informer leaves out Failed pods (FieldSelector
	// status.phase!=Failed); Succeeded ones count there too.
	sel := fields.AndSelectors(
		fields.OneTermEqualSelector("spec.nodeName", node),
		fields.OneTermEqualSelector("spec.serviceAccountName", sa),
		fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)),
	)
	pods, err := n.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: sel.String(), Limit: 1})
	if err != nil {
		return fmt.Errorf("pods of %s/%s on node %s: %w", ns, sa, node, err)
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no instances of %q found on node %q", ns+"/"+sa, node)
	}
	return nil
}

// impersonation checks a request's ImpersonatedIdentity against the
// CSR's identity ns/sa and the caller, as istiod's CreateCertificate: the
// error is the reason, logged; the caller gets impersonationRefused.
func (s *Server) impersonation(ctx context.Context, caller Caller, requested, ns, sa string) error {
	if want := Identity(s.CA.TrustDomain(), ns, sa); requested != want {
		return fmt.Errorf("impersonated identity %q is not the CSR's identity %q", requested, want)
	}
	if caller.Permits(ns, sa) {
		// The bootstrap token, or a caller asking for its own identity.
		return nil
	}
	if s.Nodes == nil {
		return errors.New("impersonation not allowed, as node authorizer (--trusted-node-accounts, CA_TRUSTED_NODE_ACCOUNTS) is not configured")
	}
	return s.Nodes.Authorize(ctx, caller, ns, sa)
}
