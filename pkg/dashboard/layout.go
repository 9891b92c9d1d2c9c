package dashboard

import "sort"

// Layout spacing, in SVG units.
const (
	layerWidth = 320
	rowHeight  = 90
	marginX    = 90
	marginY    = 50
)

// layout places nodes in layers, deterministically: a node's layer is the
// longest path to it from a node nobody calls (cycles cut after as many
// rounds as there are nodes); inside a layer nodes are ordered by kind and
// ID. The same traffic always gives the same picture.
func layout(g *Graph) {
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	idx := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		idx[n.ID] = i
	}
	layer := make([]int, len(g.Nodes))
	for round := 0; round < len(g.Nodes); round++ {
		changed := false
		for _, e := range g.Edges {
			s, t := idx[e.Source], idx[e.Target]
			if s != t && layer[t] < layer[s]+1 {
				layer[t] = layer[s] + 1
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	rows := map[int][]int{}
	maxLayer, maxRows := 0, 0
	for i := range g.Nodes {
		rows[layer[i]] = append(rows[layer[i]], i)
		maxLayer = max(maxLayer, layer[i])
	}
	for l, members := range rows {
		sort.SliceStable(members, func(a, b int) bool {
			na, nb := g.Nodes[members[a]], g.Nodes[members[b]]
			if na.Kind != nb.Kind {
				return na.Kind > nb.Kind
			}
			return na.ID < nb.ID
		})
		for r, i := range members {
			g.Nodes[i].Layer = l
			g.Nodes[i].X = marginX + l*layerWidth
			g.Nodes[i].Y = marginY + r*rowHeight
		}
		maxRows = max(maxRows, len(members))
	}
	g.Width = 2*marginX + maxLayer*layerWidth
	g.Height = 2*marginY + max(maxRows-1, 0)*rowHeight
}
