package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestServerInfoConcurrency: a proxy started with --concurrency 1 runs on
// one core and says so in Envoy's /server_info (command_line_options
// .concurrency), LIVE once it has its listeners.
func TestServerInfoConcurrency(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{ProxyArgs: []string{"--concurrency", "1"}})
	c := m.AddClient(testenv.ClientOptions{Name: "client"})
	m.WaitConverged(func() error {
		resp, err := http.Get("http://" + c.AdminAddress + "/server_info")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var info struct {
			State   string `json:"state"`
			Options struct {
				Concurrency int `json:"concurrency"`
			} `json:"command_line_options"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
			return err
		}
		if info.State != "LIVE" || info.Options.Concurrency != 1 {
			return fmt.Errorf("server_info: state %q, concurrency %d; want LIVE, 1", info.State, info.Options.Concurrency)
		}
		return nil
	}, convergeTimeout)
}
