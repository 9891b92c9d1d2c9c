package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestInjectionWebhookStarted: a control plane given a cluster serves
// the injection webhook and registers it with its CA's roots.
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
}
