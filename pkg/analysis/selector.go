package analysis

import (
	"strings"

	klabels "k8s.io/apimachinery/pkg/labels"
)

// selectorString is a label selector as Istio prints it in messages
// (klabels.SelectorFromSet(set).String(): "k=v,k2=v2", sorted).
func selectorString(set map[string]string) string {
	return klabels.SelectorFromSet(set).String()
}

// selects reports whether the selector set matches labels; an empty set
// matches everything, as klabels.SelectorFromSet.
func selects(set, labels map[string]string) bool {
	return klabels.SelectorFromSet(set).Matches(klabels.Set(labels))
}

// selectorLabel is the first label key of a printed selector, the key
// Istio finds the selector's line by (util.ExtractLabelFromSelectorString).
func selectorLabel(s string) string {
	k, _, _ := strings.Cut(s, "=")
	return k
}

// parseSelector reads "k=v,k2=v2" back (gateway parseSelectorFromString).
func parseSelector(s string) map[string]string {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		kv := strings.Split(pair, "=")
		if len(kv) == 2 {
			out[kv[0]] = kv[1]
		}
	}
	return out
}
