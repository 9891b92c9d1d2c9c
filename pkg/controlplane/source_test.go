package controlplane

import (
	"context"
	"fmt"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/config"
)

// TestKubeSourceMeshConfig runs the controller on a real API server and a
// folder: the folder's config is read (the merge), the istio ConfigMap's
// MeshConfig replaces --mesh-config from the start (the CA's trust
// domain included), a change of it is a full push with the new
// MeshConfig, an invalid one is a config error keeping the last good, and
// deleting the ConfigMap goes back to --mesh-config.
func TestKubeSourceMeshConfig(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.CreateNamespace(t, "istio-system", nil)
	kc := cluster.Client(t)
	cms := kc.CoreV1().ConfigMaps("istio-system")
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data: map[string]string{"mesh": "trustDomain: td.example\n"}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "vs.yaml", vs("reviews", "v1"))
	r = startWith(t, Options{ConfigDir: dir, Kube: cluster.RESTConfig()})

	if st := r.status(t); st.Kubernetes != cluster.Host || st.ConfigDir != dir {
		t.Errorf("/debug/status kubernetes %q config_dir %q, want %q and %q", st.Kubernetes, st.ConfigDir, cluster.Host, dir)
	}
	if got := r.c.opts.Mesh.GetTrustDomain(); got != "td.example" {
		t.Errorf("trust domain at start %q, want the ConfigMap's td.example", got)
	}
	if got := r.c.security.ca.TrustDomain(); got != "td.example" {
		t.Errorf("CA trust domain %q, want td.example", got)
	}
	waitUntil(t, "folder's VirtualService", func() error {
		for _, res := range r.c.status().subsets {
			if strings.Contains(res, "reviews") {
				return nil
			}
		}
		return fmt.Errorf("not loaded")
	})

	mode := func() meshv1alpha1.MeshConfig_OutboundTrafficPolicy_Mode {
		return r.c.push.Load().mesh.GetOutboundTrafficPolicy().GetMode()
	}
	set := func(mesh string) {
		t.Helper()
		cur, err := cms.Get(ctx, "istio", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Data["mesh"] = mesh
		if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	fullBefore := len(r.log.lines("msg=push", "kind=full"))
	set("trustDomain: td.example\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
	// The push is logged after its snapshot is stored (controller.go), so
	// the wait covers both: the new mode served, and a full push logged.
	waitUntil(t, "new MeshConfig pushed in full", func() error {
		if mode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
			return fmt.Errorf("mode %v", mode())
		}
		if n := len(r.log.lines("msg=push", "kind=full")); n <= fullBefore {
			return fmt.Errorf("the MeshConfig change was not a full push (%d full pushes, %d before)", n, fullBefore)
		}
		return nil
	})

	set("outboundTrafficPolicy: {mode: NO_SUCH_MODE}\n")
	waitUntil(t, "invalid MeshConfig reported", func() error {
		if !strings.Contains(config.Errors(r.c.ConfigErrors()).Error(), "ConfigMap istio-system/istio key mesh") {
			return fmt.Errorf("errors %v", r.c.ConfigErrors())
		}
		return nil
	})
	if mode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		t.Errorf("last good MeshConfig not kept: mode %v", mode())
	}

	if err := cms.Delete(ctx, "istio", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "back to --mesh-config", func() error {
		if mode() != meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
			return fmt.Errorf("mode %v", mode())
		}
		return nil
	})
}
