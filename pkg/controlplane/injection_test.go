package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// TestInjectionWebhookStarted: a control plane given a cluster serves
// the injection webhook and registers it with its CA's roots; injected
// proxies' --concurrency follows the MeshConfig in force.
func TestInjectionWebhookStarted(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.CreateNamespace(t, "istio-system", nil) // its leader Lease lives there
	addr := testenv.FreeAddr()
	r := startWith(t, Options{ConfigDir: t.TempDir(), Injection: InjectionOptions{
		Kube: cluster.RESTConfig(), Address: addr, URL: "https://" + addr + "/inject"}})
	cs := cluster.Client(t)
	if err := testenv.Eventually(func() error {
		cfg, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), "istio-sidecar-injector", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !bytes.Equal(cfg.Webhooks[0].ClientConfig.CABundle, r.c.security.ca.RootPEM()) {
			return fmt.Errorf("caBundle is not the control plane's roots")
		}
		return nil
	}, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// Injected proxies get meshConfig.defaultConfig.concurrency as in
	// force when the pod is admitted: none by default, then the changed
	// mesh config's.
	cluster.CreateNamespace(t, "shop", map[string]string{"istio-injection": "enabled"})
	n := 0
	concurrency := func() (string, error) {
		n++
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", n)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		got, err := cs.CoreV1().Pods("shop").Create(context.Background(), pod, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		for _, c := range append(got.Spec.InitContainers, got.Spec.Containers...) {
			if c.Name == inject.ProxyContainerName {
				if i := slices.Index(c.Args, "--concurrency"); i >= 0 {
					return c.Args[i+1], nil
				}
				return "", nil
			}
		}
		return "", errors.New("pod stored without the sidecar: webhook not in force yet")
	}
	if err := testenv.Eventually(func() error {
		c, err := concurrency()
		if err == nil && c != "" {
			t.Errorf("--concurrency %s with the default mesh config", c)
		}
		return err
	}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	mesh, err := meshconfig.Parse([]byte("defaultConfig:\n  concurrency: 4\n"), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.c.applyMesh(mesh)
	if c, err := concurrency(); err != nil || c != "4" {
		t.Errorf("--concurrency %q (%v) after the mesh config set defaultConfig.concurrency 4", c, err)
	}
}
