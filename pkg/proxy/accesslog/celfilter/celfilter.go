// Package celfilter is Envoy's CEL access log filter
// (envoy.access_loggers.extension_filters.cel, ExpressionFilter), which
// Istio generates from a Telemetry accessLogging filter.expression: a CEL
// expression over Envoy's attributes
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes)
// deciding, per request or connection, whether a line is written.
//
// Expressions are parsed, type-checked and planned once, at config time
// (Compile). An expression naming an attribute the proxy does not
// provide is an error naming it, so the control plane refuses it on the
// Telemetry and the proxy NACKs it, instead of a filter that could never
// match. As in Envoy (source/extensions/access_loggers/filters/cel), an
// evaluation error or a non-boolean result does not log.
package celfilter

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
)

// Name is the extension filter's name in an AccessLog's extension_filter.
const Name = "envoy.access_loggers.extension_filters.cel"

// TypeURL is the type of its typed_config (Envoy's ExpressionFilter).
const TypeURL = "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"

// Attr is one Envoy attribute the proxy provides.
type Attr int

// The attributes, by Envoy's names (root.field).
const (
	RequestPath Attr = iota
	RequestURLPath
	RequestHost
	RequestScheme
	RequestMethod
	RequestHeaders
	RequestUserAgent
	RequestID
	RequestProtocol
	RequestQuery
	RequestReferer
	ResponseCode
	ResponseCodeDetails
	ResponseFlags
	ResponseHeaders
	ResponseSize
	ConnectionMTLS
	ConnectionRequestedServerName
	SourceAddress
	SourcePort
	DestinationAddress
	DestinationPort
	UpstreamAddress
	XDSClusterName
	XDSRouteName
)

// attrs are the attributes by root and field.
var attrs = map[string]map[string]Attr{
	"request": {"path": RequestPath, "url_path": RequestURLPath, "host": RequestHost, "scheme": RequestScheme,
		"method": RequestMethod, "headers": RequestHeaders, "useragent": RequestUserAgent, "id": RequestID,
		"protocol": RequestProtocol, "query": RequestQuery, "referer": RequestReferer},
	"response": {"code": ResponseCode, "code_details": ResponseCodeDetails, "flags": ResponseFlags,
		"headers": ResponseHeaders, "size": ResponseSize},
	"connection":  {"mtls": ConnectionMTLS, "requested_server_name": ConnectionRequestedServerName},
	"source":      {"address": SourceAddress, "port": SourcePort},
	"destination": {"address": DestinationAddress, "port": DestinationPort},
	"upstream":    {"address": UpstreamAddress},
	"xds":         {"cluster_name": XDSClusterName, "route_name": XDSRouteName},
}

// Value is one attribute's value: a string, an int or a bool by the
// attribute's type.
type Value struct {
	Str  string
	Int  int64
	Bool bool
}

// Source is one request or connection, as the filter reads it. Attr
// reports false for an attribute that has no value (request.* on a TCP
// connection, an absent header attribute such as request.useragent).
type Source interface {
	Attr(a Attr) (Value, bool)
	// Header is a request (response false) or response header's value.
	Header(response bool, name string) (string, bool)
}

// Filter is a compiled expression.
type Filter struct {
	expr string
	prg  cel.Program
}

var env = func() *cel.Env {
	opts := make([]cel.EnvOption, 0, len(attrs))
	for _, root := range sortedRoots() {
		opts = append(opts, cel.Variable(root, cel.MapType(cel.StringType, cel.DynType)))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		panic(err)
	}
	return e
}()

func sortedRoots() []string {
	out := make([]string, 0, len(attrs))
	for r := range attrs {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Check reports whether expr compiles: valid CEL, naming only the
// attributes the proxy provides.
func Check(expr string) error {
	_, err := Compile(expr)
	return err
}

// Compile parses, checks and plans expr.
func Compile(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid CEL expression %q: %w", expr, iss.Err())
	}
	if err := checkAttributes(checked); err != nil {
		return nil, fmt.Errorf("CEL expression %q: %w", expr, err)
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("CEL expression %q: %w", expr, err)
	}
	return &Filter{expr: expr, prg: prg}, nil
}

// Expression is the source text.
func (f *Filter) Expression() string { return f.expr }

// Match evaluates the filter for src: true logs. An error or a non-bool
// result is false, as in Envoy.
func (f *Filter) Match(src Source) bool {
	a := activations.Get().(*activation)
	a.src = src
	out, _, err := f.prg.Eval(a)
	a.release()
	if err != nil {
		return false
	}
	b, ok := out.(types.Bool)
	return ok && bool(b)
}

// checkAttributes walks the expression: every use of an attribute root
// (request, response, ...) must select one of its supported fields, as
// request.method or request["method"].
func checkAttributes(a *cel.Ast) error {
	var bad []string
	qualified := map[int64]bool{}
	var roots []celast.Expr
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			if _, ok := attrs[e.AsIdent()]; ok {
				roots = append(roots, e)
			}
		case celast.SelectKind:
			s := e.AsSelect()
			if op := s.Operand(); op.Kind() == celast.IdentKind {
				if fields, ok := attrs[op.AsIdent()]; ok {
					qualified[op.ID()] = true
					if _, ok := fields[s.FieldName()]; !ok {
						bad = append(bad, op.AsIdent()+"."+s.FieldName())
					}
				}
			}
		case celast.CallKind:
			c := e.AsCall()
			if c.FunctionName() != "_[_]" || len(c.Args()) != 2 {
				return
			}
			op, key := c.Args()[0], c.Args()[1]
			if op.Kind() != celast.IdentKind {
				return
			}
			if fields, ok := attrs[op.AsIdent()]; ok {
				qualified[op.ID()] = true
				k, isStr := key.AsLiteral().(types.String)
				if key.Kind() != celast.LiteralKind || !isStr {
					bad = append(bad, op.AsIdent()+"[<not a constant string>]")
				} else if _, ok := fields[string(k)]; !ok {
					bad = append(bad, op.AsIdent()+"."+string(k))
				}
			}
		}
	}))
	for _, r := range roots {
		if !qualified[r.ID()] {
			bad = append(bad, r.AsIdent()+" (used without naming one of its attributes)")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("attribute %s is not provided by sluice's proxy (supported: %s)",
			strings.Join(bad, ", "), supportedList())
	}
	return nil
}

func supportedList() string {
	var out []string
	for _, root := range sortedRoots() {
		for f := range attrs[root] {
			out = append(out, root+"."+f)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// activation resolves the attribute roots to lazy maps over src. It is
// pooled with its maps, so an evaluation allocates none of them; the
// result (a bool) never refers to them.
type activation struct {
	src   Source
	roots map[string]*rootMap
}

var activations = sync.Pool{New: func() any {
	a := &activation{roots: make(map[string]*rootMap, len(attrs))}
	for name, fields := range attrs {
		a.roots[name] = &rootMap{fields: fields}
	}
	return a
}}

func (a *activation) ResolveName(name string) (any, bool) {
	m, ok := a.roots[name]
	if !ok {
		return nil, false
	}
	m.src = a.src
	return m, true
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) release() {
	a.src = nil
	for _, m := range a.roots {
		m.src = nil
	}
	activations.Put(a)
}
