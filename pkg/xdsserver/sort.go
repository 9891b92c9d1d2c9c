package xdsserver

import "sort"

func sortStatus(s []ProxyStatus) {
	sort.Slice(s, func(i, j int) bool { return s[i].ID < s[j].ID })
}
