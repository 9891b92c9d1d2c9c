package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// Secret is one SDS secret the proxy serves, as istioctl's secret row
// (istio/istio istioctl/pkg/writer/compare/sds: SecretItem).
type Secret struct {
	Name string `json:"resource_name"`
	// Type is "Cert Chain" (the workload certificate) or "CA" (a root of
	// the trust bundle).
	Type         string `json:"type"`
	State        string `json:"state"`
	Valid        bool   `json:"cert_valid"`
	SerialNumber string `json:"serial_number"`
	NotAfter     string `json:"not_after"`
	NotBefore    string `json:"not_before"`
}

// ProxySecrets reads the proxy admin's /certs: the workload certificate
// (SDS "default", its leaf) and each root of the trust bundle ("ROOTCA").
// Every secret the proxy holds is in use (ACTIVE): it has no warming
// state.
func ProxySecrets(hc *http.Client, adminAddress string, now time.Time) ([]Secret, error) {
	resp, err := hc.Get("http://" + adminAddress + "/certs")
	if err != nil {
		return nil, fmt.Errorf("proxy admin: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy admin %s/certs: %s", adminAddress, resp.Status)
	}
	var view identity.CertsView
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil {
		return nil, fmt.Errorf("proxy admin %s/certs: %w", adminAddress, err)
	}
	item := func(name, typ string, d identity.CertDetails) Secret {
		return Secret{Name: name, Type: typ, State: "ACTIVE", SerialNumber: d.SerialNumber,
			Valid:    now.After(d.ValidFrom) && now.Before(d.ExpirationTime),
			NotAfter: d.ExpirationTime.UTC().Format(time.RFC3339), NotBefore: d.ValidFrom.UTC().Format(time.RFC3339)}
	}
	out := []Secret{}
	for _, pair := range view.Certificates {
		if len(pair.CertChain) > 0 {
			out = append(out, item(ca.SDSWorkloadCert, "Cert Chain", pair.CertChain[0]))
		}
		for _, root := range pair.CACert {
			out = append(out, item(ca.SDSRootCA, "CA", root))
		}
	}
	return out, nil
}

// WriteSecrets prints RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER
// NOT AFTER NOT BEFORE, as istioctl.
func WriteSecrets(w io.Writer, secrets []Secret) error {
	if len(secrets) == 0 {
		_, err := fmt.Fprintln(w, "No secret items to show.")
		return err
	}
	tw := new(tabwriter.Writer).Init(w, 0, 5, 5, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE NAME\tTYPE\tSTATUS\tVALID CERT\tSERIAL NUMBER\tNOT AFTER\tNOT BEFORE")
	for _, s := range secrets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", s.Name, s.Type, s.State, s.Valid, s.SerialNumber, s.NotAfter, s.NotBefore)
	}
	return tw.Flush()
}
