package analysis

import (
	"fmt"

	yamlv3 "go.yaml.in/yaml/v3"
)

// buildFieldPathMap records the line of every scalar field under node, with
// paths as Istio writes them ("{.spec.http[0].route[1].destination.host}"),
// lines offset by the document's first line. Ported from istio/istio
// pilot/pkg/config/file/store.go BuildFieldPathMap.
func buildFieldPathMap(node *yamlv3.Node, startLine int, curPath string, out map[string]int) {
	content := node.Content
	for i := 0; i+1 < len(content); i += 2 {
		key, value := content[i], content[i+1]
		path := curPath + "." + key.Value
		switch value.Kind {
		case yamlv3.ScalarNode:
			out["{"+path+"}"] = value.Line + startLine - 1
		case yamlv3.MappingNode:
			buildFieldPathMap(value, startLine, path, out)
		case yamlv3.SequenceNode:
			for j, item := range value.Content {
				p := fmt.Sprintf("%s[%d]", path, j)
				if item.Kind == yamlv3.ScalarNode {
					out["{"+p+"}"] = item.Line + startLine - 1
				} else {
					buildFieldPathMap(item, startLine, p, out)
				}
			}
		}
	}
}

// errorLine returns the line of a field path, as Istio's util.ErrorLine.
func (o *Object) errorLine(path string) (int, bool) {
	line, ok := o.fields[path]
	return line, ok
}
