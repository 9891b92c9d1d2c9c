package telemetryexpr

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Unknown is the value of an expression whose attribute is absent (a
// header not sent, a peer not known, a request attribute on a TCP
// connection) or whose evaluation fails, as Istio's stats filter reports
// it.
const Unknown = "unknown"

// Expr is a compiled value expression.
type Expr struct {
	src string
	// constant is set for literals (isConst).
	constant string
	isConst  bool
	// get reads one attribute directly; nil for a cel-go program.
	get func(a *Attrs) (string, bool)
	prg cel.Program
}

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		m := cel.MapType(cel.StringType, cel.DynType)
		opts := []cel.EnvOption{cel.Variable("filter_state", m)}
		for root := range attributes {
			opts = append(opts, cel.Variable(root, m))
		}
		env, envErr = cel.NewEnv(opts...)
	})
	return env, envErr
}

// Check reports whether expr is a value expression the proxy can
// evaluate: valid CEL over the attributes it has. The error names the
// expression and what is wrong with it.
func Check(expr string) error {
	_, err := Compile(expr)
	return err
}

// CheckTag reports whether a tagOverride (a metric label set to expr) is
// one the proxy can honour: name a Prometheus label name, expr a value
// expression Check accepts.
func CheckTag(name, expr string) error {
	if !ValidLabel(name) {
		return fmt.Errorf("tag %q: not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", name)
	}
	if err := Check(expr); err != nil {
		return fmt.Errorf("tag %q: %w", name, err)
	}
	return nil
}

// ValidLabel reports whether n is a Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __).
func ValidLabel(n string) bool {
	if n == "" || strings.HasPrefix(n, "__") {
		return false
	}
	for i, r := range n {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

// Compile parses, checks and compiles expr.
func Compile(expr string) (*Expr, error) {
	e, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("telemetryexpr: %w", err)
	}
	a, iss := e.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, iss.Err())
	}
	root := a.NativeRep().Expr()
	if err := checkAttributes(root); err != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, err)
	}
	out := &Expr{src: expr}
	if root.Kind() == celast.LiteralKind {
		if s, ok := format(root.AsLiteral()); ok {
			out.constant, out.isConst = s, true
			return out, nil
		}
	}
	if get := direct(a.NativeRep(), root); get != nil {
		out.get = get
		return out, nil
	}
	if out.prg, err = e.Program(a); err != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, err)
	}
	return out, nil
}

// String is the expression's source.
func (x *Expr) String() string { return x.src }

// Constant is the value of a literal expression; false for one that reads
// attributes.
func (x *Expr) Constant() (string, bool) { return x.constant, x.isConst }

// Eval is the expression's value for a: Unknown when an attribute it
// needs is absent or its evaluation fails. A direct accessor allocates
// nothing (but for address formatting); a cel-go program does.
func (x *Expr) Eval(a *Attrs) string {
	switch {
	case x.isConst:
		return x.constant
	case x.get != nil:
		if v, ok := x.get(a); ok {
			return v
		}
		return Unknown
	}
	v, _, err := x.prg.Eval(&activation{a: a})
	if err != nil {
		return Unknown
	}
	if s, ok := format(v); ok {
		return s
	}
	return Unknown
}

// format converts a CEL result into a label value.
func format(v ref.Val) (string, bool) {
	switch t := v.(type) {
	case types.String:
		return string(t), true
	case types.Int:
		return strconv.FormatInt(int64(t), 10), true
	case types.Uint:
		return strconv.FormatUint(uint64(t), 10), true
	case types.Bool:
		return strconv.FormatBool(bool(t)), true
	case types.Double:
		return strconv.FormatFloat(float64(t), 'g', -1, 64), true
	}
	return "", false
}

// checkAttributes walks the expression and refuses a field of a known
// root the proxy does not have (request.size, upstream_peer.foo), so an
// unsupported attribute is an error at load time rather than "unknown"
// on every request.
func checkAttributes(e celast.Expr) error {
	var err error
	celast.PostOrderVisit(e, celast.NewExprVisitor(func(n celast.Expr) {
		if err != nil || n.Kind() != celast.SelectKind {
			return
		}
		root, field, ok := rootField(n)
		if !ok {
			return
		}
		if !attributes[root][field] {
			err = fmt.Errorf("attribute %s.%s is not supported (supported: %s)", root, field, supported(root))
		}
	}))
	if err != nil {
		return err
	}
	// filter_state holds only the peers.
	celast.PostOrderVisit(e, celast.NewExprVisitor(func(n celast.Expr) {
		if err != nil || n.Kind() != celast.SelectKind {
			return
		}
		s := n.AsSelect()
		if op := s.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "filter_state" &&
			s.FieldName() != "upstream_peer" && s.FieldName() != "downstream_peer" {
			err = fmt.Errorf("attribute filter_state.%s is not supported (supported: filter_state.upstream_peer, filter_state.downstream_peer)", s.FieldName())
		}
	}))
	return err
}

// rootField names the root attribute and field a select reads:
// request.host is ("request", "host"), filter_state.upstream_peer.app
// ("upstream_peer", "app").
func rootField(n celast.Expr) (string, string, bool) {
	s := n.AsSelect()
	op := s.Operand()
	switch op.Kind() {
	case celast.IdentKind:
		if _, ok := attributes[op.AsIdent()]; ok {
			return op.AsIdent(), s.FieldName(), true
		}
	case celast.SelectKind:
		in := op.AsSelect()
		if base := in.Operand(); base.Kind() == celast.IdentKind && base.AsIdent() == "filter_state" {
			if f := in.FieldName(); f == "upstream_peer" || f == "downstream_peer" {
				return f, s.FieldName(), true
			}
		}
	}
	return "", "", false
}

func supported(root string) string {
	var names []string
	for f := range attributes[root] {
		names = append(names, root+"."+f)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// direct is a reader for an expression made of attributes, headers and
// string literals joined by string concatenation ('v-' + request.method),
// evaluated without cel-go (one string built per request); nil for
// anything else. A concatenation is taken only where the checker typed
// it string, so 1 + 2 stays arithmetic.
func direct(checked *celast.AST, e celast.Expr) func(*Attrs) (string, bool) {
	if get := accessor(e); get != nil {
		return get
	}
	if e.Kind() == celast.LiteralKind {
		if s, ok := e.AsLiteral().(types.String); ok {
			v := string(s)
			return func(*Attrs) (string, bool) { return v, true }
		}
		return nil
	}
	if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != "_+_" || len(e.AsCall().Args()) != 2 ||
		checked.GetType(e.ID()) != types.StringType {
		return nil
	}
	args := e.AsCall().Args()
	if !isString(args[0]) || !isString(args[1]) {
		return nil // CEL refuses string + int at run time: leave it to cel-go
	}
	l, r := direct(checked, args[0]), direct(checked, args[1])
	if l == nil || r == nil {
		return nil
	}
	return func(a *Attrs) (string, bool) {
		x, ok := l(a)
		if !ok {
			return "", false
		}
		y, ok := r(a)
		if !ok {
			return "", false
		}
		return x + y, true
	}
}

// nonString are the attributes whose CEL value is not a string.
var nonString = map[[2]string]bool{{"response", "code"}: true, {"source", "port"}: true,
	{"destination", "port"}: true, {"connection", "mtls"}: true}

// isString reports whether e, an operand of a concatenation, is a string
// for CEL: a string literal, an attribute of string value, a header, or
// another concatenation.
func isString(e celast.Expr) bool {
	switch e.Kind() {
	case celast.LiteralKind:
		_, ok := e.AsLiteral().(types.String)
		return ok
	case celast.SelectKind:
		if peerLabelAccessor(e) != nil {
			return true
		}
		root, field, ok := rootField(e)
		return ok && !nonString[[2]string{root, field}]
	case celast.CallKind:
		return e.AsCall().FunctionName() == "_[_]" || e.AsCall().FunctionName() == "_+_"
	}
	return false
}

// accessor is a direct reader for an expression that is one attribute
// (request.host) or one header (request.headers['x-user']); nil for
// anything else.
func accessor(e celast.Expr) func(*Attrs) (string, bool) {
	switch e.Kind() {
	case celast.SelectKind:
		if e.AsSelect().IsTestOnly() {
			return nil
		}
		if get := peerLabelAccessor(e); get != nil {
			return get
		}
		root, field, ok := rootField(e)
		if !ok {
			return nil
		}
		return fieldAccessor(root, field)
	case celast.CallKind:
		c := e.AsCall()
		if c.FunctionName() != "_[_]" || len(c.Args()) != 2 {
			return nil
		}
		m, key := c.Args()[0], c.Args()[1]
		if m.Kind() != celast.SelectKind || key.Kind() != celast.LiteralKind {
			return nil
		}
		k, ok := key.AsLiteral().(types.String)
		if !ok {
			return nil
		}
		root, field, ok := rootField(m)
		if !ok || field != "headers" {
			return nil
		}
		return headerAccessor(root, http.CanonicalHeaderKey(string(k)))
	}
	return nil
}

// peerLabelAccessor reads upstream_peer.labels['k'].value (or
// downstream_peer's); nil for any other expression.
func peerLabelAccessor(e celast.Expr) func(*Attrs) (string, bool) {
	s := e.AsSelect()
	if s.FieldName() != "value" || s.Operand().Kind() != celast.CallKind {
		return nil
	}
	c := s.Operand().AsCall()
	if c.FunctionName() != "_[_]" || len(c.Args()) != 2 || c.Args()[0].Kind() != celast.SelectKind ||
		c.Args()[1].Kind() != celast.LiteralKind {
		return nil
	}
	k, ok := c.Args()[1].AsLiteral().(types.String)
	root, field, isAttr := rootField(c.Args()[0])
	if !ok || !isAttr || field != "labels" || (root != "upstream_peer" && root != "downstream_peer") {
		return nil
	}
	key := string(k)
	return func(a *Attrs) (string, bool) {
		p := a.Upstream
		if root == "downstream_peer" {
			p = a.Downstream
		}
		if p == nil {
			return "", false
		}
		v, ok := p.Labels[key]
		return v, ok
	}
}

func headerAccessor(root, key string) func(*Attrs) (string, bool) {
	if root == "response" {
		return func(a *Attrs) (string, bool) { return first(a.ResponseHeader[key]) }
	}
	return func(a *Attrs) (string, bool) {
		if a.Request == nil {
			return "", false
		}
		return first(a.Request.Header[key])
	}
}

func first(v []string) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}
