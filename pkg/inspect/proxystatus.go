package inspect

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// Sync states, as istioctl proxy-status prints them (istio/istio
// istioctl/pkg/writer/pilot/status.go formatStatus; Istio's ERROR, a
// rejected update, is called NACK here).
const (
	Synced  = "SYNCED"
	Stale   = "STALE"
	Nack    = "NACK"
	NotSent = "NOT SENT"
	// Ignored is a type the proxy does not take (istioctl's IGNORED): a
	// ztunnel's Envoy types, a sidecar's or gateway's workload API.
	Ignored = "IGNORED"
)

// statusTypes are the columns in istioctl's order (coreOrder).
var statusTypes = []struct{ short, url string }{
	{"CDS", resourcev3.ClusterType}, {"LDS", resourcev3.ListenerType},
	{"EDS", resourcev3.EndpointType}, {"RDS", resourcev3.RouteType},
}

// wdsTypes are the workload API's columns (istioctl's short names, Istio's
// pkg/model/xds.go GetShortType), shown when some proxy is a ztunnel, as
// istioctl adds a column per type some proxy subscribes.
var wdsTypes = []struct{ short, url string }{{"WDS", xdsgen.AddressType}, {"WADS", xdsgen.AuthorizationType}}

// ProxyRow is one proxy's line of `sluice proxy-status`.
type ProxyRow struct {
	// Name is name.namespace, as istioctl names a proxy.
	Name      string `json:"name"`
	ID        string `json:"id"`
	ProxyType string `json:"proxy_type"`
	// Istiod is the control plane answering (its status address).
	Istiod string `json:"istiod"`
	// Version is the control plane's config (push context) version
	// published to the proxy.
	Version uint64 `json:"version"`
	// Types are CDS, LDS, EDS, RDS in that order, then WDS and WADS when
	// some proxy listed is a ztunnel.
	Types []TypeSync `json:"types"`
}

// TypeSync is one resource type's state for one proxy.
type TypeSync struct {
	Type   string `json:"type"`
	Status string `json:"status"`
	// Since is when the proxy last ACKed (SYNCED) or NACKed it.
	Since        time.Time `json:"since,omitzero"`
	SentVersion  string    `json:"sent_version,omitempty"`
	AckedVersion string    `json:"acked_version,omitempty"`
	// Nack is the proxy's error message for the rejected version.
	Nack string `json:"nack,omitempty"`
}

// StatusRows turns the control plane's sync book into proxy-status rows,
// sorted by name.
func StatusRows(list []xdsserver.ProxyStatus, istiod string) []ProxyRow {
	rows := make([]ProxyRow, 0, len(list))
	ztunnels := slices.ContainsFunc(list, func(p xdsserver.ProxyStatus) bool { return p.Type == string(model.Ztunnel) })
	for _, p := range list {
		row := ProxyRow{Name: p.Name + "." + p.Namespace, ID: p.ID, ProxyType: p.Type, Istiod: istiod, Version: p.PushVersion}
		byURL := map[string]xdsserver.TypeStatus{}
		for _, ts := range p.Types {
			byURL[ts.TypeURL] = ts
		}
		ztunnel := p.Type == string(model.Ztunnel)
		for _, t := range statusTypes {
			ts := typeSync(t.short, byURL[t.url])
			if ztunnel {
				ts = TypeSync{Type: t.short, Status: Ignored}
			} else if t.url == resourcev3.RouteType {
				ts = withVirtualHosts(ts, byURL[resourcev3.VirtualHostType])
			}
			row.Types = append(row.Types, ts)
		}
		for _, t := range wdsTypes {
			if !ztunnels {
				break
			}
			ts := typeSync(t.short, byURL[t.url])
			if !ztunnel {
				ts = TypeSync{Type: t.short, Status: Ignored}
			}
			row.Types = append(row.Types, ts)
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Name != rows[j].Name {
			return rows[i].Name < rows[j].Name
		}
		return rows[i].ID < rows[j].ID
	})
	return rows
}

// withVirtualHosts folds the VHDS state of a proxy on delta xDS, whose
// route configurations' virtual hosts come as VirtualHost resources, into
// its RDS column: a rejected or unanswered virtual host update is the
// route tables' state (istioctl has no VHDS column; Istio uses no VHDS).
func withVirtualHosts(rds TypeSync, vhds xdsserver.TypeStatus) TypeSync {
	vh := typeSync(rds.Type, vhds)
	rank := map[string]int{NotSent: 0, Synced: 1, Stale: 2, Nack: 3}
	if vh.Status == NotSent || rank[vh.Status] <= rank[rds.Status] {
		return rds
	}
	if vh.Nack != "" {
		vh.Nack = "virtual hosts (VHDS): " + vh.Nack
	}
	return vh
}

// typeSync is SYNCED when the proxy ACKed the version last sent, NACK
// when it rejected it, STALE when it has not answered it yet, and NOT
// SENT when nothing of the type was sent.
func typeSync(short string, ts xdsserver.TypeStatus) TypeSync {
	out := TypeSync{Type: short, SentVersion: ts.SentVersion, AckedVersion: ts.AckedVersion}
	switch {
	case ts.SentVersion == "":
		out.Status = NotSent
	case ts.Nack != "" && ts.NackVersion == ts.SentVersion:
		out.Status, out.Nack, out.Since = Nack, ts.Nack, ts.NackTime
	case ts.AckedVersion == ts.SentVersion:
		out.Status, out.Since = Synced, ts.AckTime
	default:
		out.Status = Stale
	}
	return out
}

// WriteStatusTable prints rows as istioctl proxy-status's per-type table
// (NAME CLUSTER CDS LDS EDS RDS ISTIOD VERSION, with each state's age;
// WDS and WADS before ISTIOD when a ztunnel is listed),
// then each NACK's message. Sluice has no cluster ID: CLUSTER is "-".
func WriteStatusTable(w io.Writer, rows []ProxyRow, now time.Time) error {
	tw := new(tabwriter.Writer).Init(w, 0, 8, 5, ' ', 0)
	header := "NAME\tCLUSTER\tCDS\tLDS\tEDS\tRDS\tISTIOD\tVERSION"
	if slices.ContainsFunc(rows, func(r ProxyRow) bool { return len(r.Types) > len(statusTypes) }) {
		header = "NAME\tCLUSTER\tCDS\tLDS\tEDS\tRDS\tWDS\tWADS\tISTIOD\tVERSION"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fields := []string{r.Name, "-"}
		for _, t := range r.Types {
			s := t.Status
			if !t.Since.IsZero() {
				s += " (" + humanDuration(now.Sub(t.Since)) + ")"
			}
			fields = append(fields, s)
		}
		fields = append(fields, r.Istiod, fmt.Sprint(r.Version))
		fmt.Fprintln(tw, strings.Join(fields, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		for _, t := range r.Types {
			if t.Status == Nack {
				fmt.Fprintf(w, "%s %s NACK (version %s): %s\n", r.Name, t.Type, t.SentVersion, t.Nack)
			}
		}
	}
	return nil
}

// humanDuration is Kubernetes' duration.HumanDuration short form
// (k8s.io/apimachinery/pkg/util/duration), which istioctl uses.
func humanDuration(d time.Duration) string {
	switch {
	case d < -time.Second:
		return "<invalid>"
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		if s := int(d.Seconds()) % 60; s != 0 {
			return fmt.Sprintf("%dm%ds", int(d.Minutes()), s)
		}
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 8*time.Hour:
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", int(d.Hours()), m)
		}
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 8*24*time.Hour:
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", int(d.Hours()/24), h)
		}
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
