package rbac

import (
	"fmt"
	"regexp"
	"strings"
)

// uriTemplate is Envoy's uri_template path matcher
// (source/extensions/path/uri_template_lib/uri_template_internal.cc):
// the template is parsed into segments ("*" one path segment, "**" any
// number of segments including none, "{name}" / "{name=...}" variables,
// literals of RFC 3986 pchars), turned into one RE2 expression, and the
// path without its query must match it whole. Istio writes its "{*}" and
// "{**}" path templates as "*" and "**" (pilot/pkg/security/authz/matcher
// PathTemplateMatcher).
type uriTemplate struct{ re *regexp.Regexp }

// literalChars are the pchars of RFC 3986 Appendix A except '*' and '='.
const literalChars = `a-zA-Z0-9\-._~%!$&'()+,;:@`

var (
	literalRE  = regexp.MustCompile(`^[` + literalChars + `]+$`)
	variableRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
	printable  = regexp.MustCompile(`^/[[:graph:]]*$`)
)

const (
	pathGlob = `[` + literalChars + `]+`
	textGlob = `[` + literalChars + `/]*`
)

func (t *uriTemplate) match(path string) bool { return t.re.MatchString(trimQuery(path)) }

// compileURITemplate parses a path template as Envoy's
// parseURLPatternSyntax does and compiles its regex (toRegexPattern).
func compileURITemplate(tmpl string) (*uriTemplate, error) {
	if !printable.MatchString(tmpl) {
		return nil, fmt.Errorf("invalid pattern")
	}
	rest := tmpl[1:]
	var segs []string
	suffix := ""
	textGlobSeen := false
	vars := map[string]bool{}
	for rest != "" {
		var seg string
		var err error
		switch {
		case rest[0] == '*':
			seg, rest, err = consumeOperator(rest, &textGlobSeen)
		case rest[0] == '{':
			seg, rest, err = consumeVariable(rest, &textGlobSeen, vars)
		default:
			seg, rest, err = consumeLiteral(rest)
		}
		if err != nil {
			return nil, err
		}
		segs = append(segs, seg)
		if rest == "" {
			break
		}
		if rest == "/" {
			segs = append(segs, "") // a trailing '/'
			break
		}
		if rest[0] == '/' {
			rest = rest[1:]
			continue
		}
		// Not followed by '/': a literal suffix ("/{*}.jpg").
		lit, left, err := consumeLiteral(rest)
		if err != nil {
			return nil, err
		}
		if left != "" {
			return nil, fmt.Errorf("prefix match not supported")
		}
		suffix = lit
		break
	}
	re, err := regexp.Compile(`^/` + strings.Join(segs, "/") + suffix + `$`)
	if err != nil {
		return nil, err
	}
	return &uriTemplate{re: re}, nil
}

func consumeLiteral(s string) (string, string, error) {
	lit, rest := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		lit, rest = s[:i], s[i:]
	}
	if !literalRE.MatchString(lit) {
		return "", "", fmt.Errorf("invalid literal %q", lit)
	}
	return regexp.QuoteMeta(lit), rest, nil
}

func consumeOperator(s string, textGlobSeen *bool) (string, string, error) {
	if *textGlobSeen {
		return "", "", fmt.Errorf("glob after text glob")
	}
	if strings.HasPrefix(s, "**") {
		*textGlobSeen = true
		return textGlob, s[2:], nil
	}
	return pathGlob, s[1:], nil
}

// consumeVariable reads "{name}" or "{name=seg/seg...}"; Envoy allows at
// most 5 variables, names of 1 to 16 characters, each used once.
func consumeVariable(s string, textGlobSeen *bool, vars map[string]bool) (string, string, error) {
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return "", "", fmt.Errorf("unmatched variable bracket")
	}
	body, rest := s[1:end], s[end+1:]
	name, pattern, hasPattern := strings.Cut(body, "=")
	if !variableRE.MatchString(name) || len(name) > 16 {
		return "", "", fmt.Errorf("invalid variable name %q", name)
	}
	if vars[name] {
		return "", "", fmt.Errorf("repeated variable name %q", name)
	}
	vars[name] = true
	if len(vars) > 5 {
		return "", "", fmt.Errorf("exceeded variable count limit")
	}
	if !hasPattern {
		if *textGlobSeen {
			return "", "", fmt.Errorf("implicit variable path glob after text glob")
		}
		return "(" + pathGlob + ")", rest, nil
	}
	if pattern == "" {
		return "", "", fmt.Errorf("empty variable match")
	}
	var parts []string
	for pattern != "" {
		var p string
		var err error
		if pattern[0] == '*' {
			p, pattern, err = consumeOperator(pattern, textGlobSeen)
		} else {
			p, pattern, err = consumeLiteral(pattern)
		}
		if err != nil {
			return "", "", err
		}
		parts = append(parts, p)
		if pattern != "" {
			if pattern[0] != '/' || len(pattern) == 1 {
				return "", "", fmt.Errorf("invalid variable match")
			}
			pattern = pattern[1:]
		}
	}
	return "(" + strings.Join(parts, "/") + ")", rest, nil
}
