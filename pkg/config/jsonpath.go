package config

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// protojsonPos finds the "(line L:C)" position protojson puts in its errors.
var protojsonPos = regexp.MustCompile(`\(line (\d+):(\d+)\):?\s*`)

// explainJSONError rewrites a protojson error about data so it names the
// field path (for example "spec.http[0].route[0].weight") instead of a
// position in JSON the user never wrote.
func explainJSONError(prefix string, data []byte, msg string) (field, text string) {
	m := protojsonPos.FindStringSubmatchIndex(msg)
	if m == nil {
		return prefix, msg
	}
	line, _ := strconv.Atoi(msg[m[2]:m[3]])
	col, _ := strconv.Atoi(msg[m[4]:m[5]])
	text = strings.TrimSpace(msg[:m[0]] + msg[m[1]:])
	offset := lineColOffset(data, line, col)
	if p := jsonPathAt(data, offset); p != "" {
		return prefix + p, text
	}
	return prefix, text
}

func lineColOffset(data []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	return off + col - 1
}

type jsonFrame struct {
	array     bool
	key       string
	index     int
	expectKey bool
}

// jsonPathAt returns the path of the value or key at byte offset in data,
// like ".http[0].route[1].weight".
func jsonPathAt(data []byte, offset int) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []*jsonFrame
	best := ""
	value := func() {
		if n := len(stack); n > 0 && stack[n-1].array {
			stack[n-1].index++
		}
	}
	afterValue := func() {
		if n := len(stack); n > 0 && !stack[n-1].array {
			stack[n-1].expectKey = true
		}
	}
	for dec.InputOffset() <= int64(offset) {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		top := (*jsonFrame)(nil)
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				value()
				best = renderPath(stack)
				stack = append(stack, &jsonFrame{array: t == '[', index: -1, expectKey: t == '{'})
			default:
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case string:
			if top != nil && !top.array && top.expectKey {
				top.key, top.expectKey = t, false
				best = renderPath(stack)
				continue
			}
			value()
			best = renderPath(stack)
			afterValue()
		default:
			value()
			best = renderPath(stack)
			afterValue()
		}
	}
	return best
}

func renderPath(stack []*jsonFrame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.array {
			if f.index >= 0 {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		} else if f.key != "" {
			b.WriteString("." + f.key)
		}
	}
	return b.String()
}
