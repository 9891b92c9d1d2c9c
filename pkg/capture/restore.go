package capture

import (
	"maps"
	"slices"
	"strings"
)

// builtIn are the chains and targets iptables has itself (Istio's
// constants.BuiltInChainsAndTargetsMap): never created nor deleted.
var builtIn = map[string]bool{
	"INPUT": true, "OUTPUT": true, "FORWARD": true, "PREROUTING": true, "POSTROUTING": true,
	"ACCEPT": true, "RETURN": true, "DROP": true, "REDIRECT": true, "TPROXY": true, "MARK": true,
	"CONNMARK": true, "REJECT": true, "LOG": true, "CT": true, "MASQUERADE": true, "SNAT": true, "DNAT": true,
}

// Restore writes rules as iptables-restore input, as Istio's
// buildRestore: per table in name order, the chains created (in the order
// rules name them, then chains only jumped to), then the rules; a table
// without rules is left out. Apply it with --noflush.
func Restore(rules []Rule) string {
	tables := map[string][]string{}
	seen := map[string]bool{}
	newChain := func(table, chain string) {
		if key := chain + ":" + table; !seen[key] {
			seen[key] = true
			if !builtIn[chain] {
				tables[table] = append(tables[table], "-N "+chain)
			}
		}
	}
	for _, r := range rules {
		newChain(r.Table, r.Chain)
	}
	for _, r := range rules {
		if n := len(r.Params); n >= 2 && r.Params[n-2] == "-j" {
			newChain(r.Table, r.Params[n-1])
		}
	}
	for _, r := range rules {
		tables[r.Table] = append(tables[r.Table], strings.Join(r.Params, " "))
	}
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(tables)) {
		b.WriteString("* " + t + "\n")
		for _, l := range tables[t] {
			b.WriteString(l + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
