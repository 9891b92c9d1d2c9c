package accesslog

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// op is one command operator of Envoy's substitution format
// (source/common/formatter/substitution_formatter.h and stream_info_formatter.cc).
type op uint8

const (
	opLiteral op = iota
	opStartTime
	opReq
	opResp
	opProtocol
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opConnTerminationDetails
	opUpstreamTransportFailure
	opBytesReceived
	opBytesSent
	opDuration
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocalAddress
	opDownstreamLocalAddress
	opDownstreamLocalAddressNoPort
	opDownstreamRemoteAddress
	opDownstreamRemoteAddressNoPort
	opRequestedServerName
	opRouteName
	opAttemptCount
)

// operators maps the argument-less command names the proxy implements.
// Any other command is refused when the format is compiled, naming it.
var operators = map[string]op{
	"START_TIME":                                    opStartTime,
	"PROTOCOL":                                      opProtocol,
	"RESPONSE_CODE":                                 opResponseCode,
	"RESPONSE_FLAGS":                                opResponseFlags,
	"RESPONSE_CODE_DETAILS":                         opResponseCodeDetails,
	"CONNECTION_TERMINATION_DETAILS":                opConnTerminationDetails,
	"UPSTREAM_TRANSPORT_FAILURE_REASON":             opUpstreamTransportFailure,
	"BYTES_RECEIVED":                                opBytesReceived,
	"BYTES_SENT":                                    opBytesSent,
	"DURATION":                                      opDuration,
	"UPSTREAM_HOST":                                 opUpstreamHost,
	"UPSTREAM_CLUSTER":                              opUpstreamCluster,
	"UPSTREAM_CLUSTER_RAW":                          opUpstreamCluster,
	"UPSTREAM_LOCAL_ADDRESS":                        opUpstreamLocalAddress,
	"DOWNSTREAM_LOCAL_ADDRESS":                      opDownstreamLocalAddress,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         opDownstreamLocalAddressNoPort,
	"DOWNSTREAM_REMOTE_ADDRESS":                     opDownstreamRemoteAddress,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":        opDownstreamRemoteAddressNoPort,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":              opDownstreamRemoteAddress,
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": opDownstreamRemoteAddressNoPort,
	"REQUESTED_SERVER_NAME":                         opRequestedServerName,
	"ROUTE_NAME":                                    opRouteName,
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":                opAttemptCount,
}

// numeric operators are typed numbers in JSON output, as Envoy's
// StreamInfoUInt64FormatterProvider values are.
func (o op) numeric() bool {
	switch o {
	case opResponseCode, opBytesReceived, opBytesSent, opDuration, opAttemptCount:
		return true
	}
	return false
}

// segment is a literal or one operator with its compiled arguments.
type segment struct {
	op      op
	literal string
	// header and alt are REQ/RESP's header names, canonical for an
	// allocation-free map lookup; pseudo headers (":path") stay as given.
	header, alt string
	// maxLen truncates the value (":N" after the command); 0 is no limit.
	maxLen int
}

// template is a compiled format string: literals and operators in order.
type template []segment

// parseTemplate compiles an Envoy format string, as Envoy's
// SubstitutionFormatParser::parse: "%COMMAND%", "%COMMAND(arg)%" or
// "%COMMAND(arg):N%". A '%' that starts no valid command, or a command
// the proxy does not implement, is an error naming it.
func parseTemplate(s string) (template, error) {
	var t template
	lit := strings.Builder{}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		end := commandEnd(s, i+1)
		if end < 0 {
			return nil, fmt.Errorf("format %q: '%%' at position %d starts no command", s, i)
		}
		cmd := s[i+1 : i+1+end]
		seg, err := parseCommand(cmd)
		if err != nil {
			return nil, fmt.Errorf("format %q: %w", s, err)
		}
		if lit.Len() > 0 {
			t = append(t, segment{op: opLiteral, literal: lit.String()})
			lit.Reset()
		}
		t = append(t, seg)
		i += end + 2
	}
	if lit.Len() > 0 {
		t = append(t, segment{op: opLiteral, literal: lit.String()})
	}
	return t, nil
}

// commandEnd is the length of the command starting at s[from:] up to its
// closing '%', or -1: Envoy's ^%([A-Z]|[0-9]|_)+(\([^\)]*\))?(:[0-9]+)?%
// (an argument may hold '%', as START_TIME(%Y) does).
func commandEnd(s string, from int) int {
	j := from
	for j < len(s) && (s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '(' {
		k := strings.IndexByte(s[j:], ')')
		if k < 0 {
			return -1
		}
		j += k + 1
	}
	k := strings.IndexByte(s[j:], '%')
	if k < 0 {
		return -1
	}
	return j + k - from
}

func parseCommand(cmd string) (segment, error) {
	if cmd == "" {
		return segment{}, fmt.Errorf("empty command %%%%")
	}
	name, arg, maxLen := cmd, "", 0
	hasArg := false
	if open := strings.IndexByte(cmd, '('); open >= 0 {
		closeAt := strings.LastIndexByte(cmd, ')')
		if closeAt < open {
			return segment{}, fmt.Errorf("command %%%s%%: unbalanced parentheses", cmd)
		}
		name, arg, hasArg = cmd[:open], cmd[open+1:closeAt], true
		if rest := cmd[closeAt+1:]; rest != "" {
			n, err := parseMaxLen(rest)
			if err != nil {
				return segment{}, fmt.Errorf("command %%%s%%: %w", cmd, err)
			}
			maxLen = n
		}
	} else if colon := strings.IndexByte(cmd, ':'); colon >= 0 {
		n, err := parseMaxLen(cmd[colon:])
		if err != nil {
			return segment{}, fmt.Errorf("command %%%s%%: %w", cmd, err)
		}
		name, maxLen = cmd[:colon], n
	}
	for _, r := range name {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return segment{}, fmt.Errorf("%%%s%% is not a command", cmd)
		}
	}
	switch name {
	case "REQ", "RESP":
		if !hasArg || arg == "" {
			return segment{}, fmt.Errorf("command %%%s%%: %s needs a header name", cmd, name)
		}
		seg := segment{op: opReq, maxLen: maxLen}
		if name == "RESP" {
			seg.op = opResp
		}
		h, alt, _ := strings.Cut(arg, "?")
		seg.header, seg.alt = headerKey(h), headerKey(alt)
		return seg, nil
	}
	o, ok := operators[name]
	if !ok {
		return segment{}, fmt.Errorf("command operator %%%s%% is not supported by sluice's access log", name)
	}
	if hasArg {
		// START_TIME(strftime) and the like: the proxy has no argument forms.
		return segment{}, fmt.Errorf("command operator %%%s(%s)%%: arguments are not supported by sluice's access log", name, arg)
	}
	return segment{op: o, maxLen: maxLen}, nil
}

func parseMaxLen(s string) (int, error) {
	if len(s) < 2 || s[0] != ':' {
		return 0, fmt.Errorf("expected ':<length>' after the command, got %q", s)
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("length %q is not a positive number", s[1:])
	}
	return n, nil
}

// headerKey is a header name as the request path stores it: pseudo
// headers in lower case, others in Go's canonical form.
func headerKey(h string) string {
	if h == "" {
		return ""
	}
	if h[0] == ':' {
		return strings.ToLower(h)
	}
	return http.CanonicalHeaderKey(h)
}
