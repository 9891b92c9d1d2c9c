package xdsgen

import (
	"fmt"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// FileAccessLogName is Envoy's name for the file access logger.
const FileAccessLogName = "envoy.access_loggers.file"

// EnvoyTextLogFormat is Istio's default text access log format
// (EnvoyTextLogFormat in pilot/pkg/model/telemetry_logging.go).
const EnvoyTextLogFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% " +
	"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% " +
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% " +
	"%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" " +
	"\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" " +
	"%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% " +
	"%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"

// EnvoyJSONLogFormatIstio is Istio's default JSON access log format
// (EnvoyJSONLogFormatIstio in pilot/pkg/model/telemetry_logging.go).
func EnvoyJSONLogFormatIstio() *structpb.Struct {
	fields := map[string]string{
		"start_time":                        "%START_TIME%",
		"route_name":                        "%ROUTE_NAME%",
		"method":                            "%REQ(:METHOD)%",
		"path":                              "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"protocol":                          "%PROTOCOL%",
		"response_code":                     "%RESPONSE_CODE%",
		"response_flags":                    "%RESPONSE_FLAGS%",
		"response_code_details":             "%RESPONSE_CODE_DETAILS%",
		"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
		"bytes_received":                    "%BYTES_RECEIVED%",
		"bytes_sent":                        "%BYTES_SENT%",
		"duration":                          "%DURATION%",
		"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
		"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
		"user_agent":                        "%REQ(USER-AGENT)%",
		"request_id":                        "%REQ(X-REQUEST-ID)%",
		"authority":                         "%REQ(:AUTHORITY)%",
		"upstream_host":                     "%UPSTREAM_HOST%",
		"upstream_cluster":                  "%UPSTREAM_CLUSTER_RAW%",
		"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
		"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
		"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
		"requested_server_name":             "%REQUESTED_SERVER_NAME%",
		"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	}
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(fields))}
	for k, v := range fields {
		s.Fields[k] = structpb.NewStringValue(v)
	}
	return s
}

// CELFilterName is Envoy's CEL access log filter extension, which Istio
// generates from a Telemetry accessLogging filter.expression.
const CELFilterName = "envoy.access_loggers.extension_filters.cel"

// accessLog is the access_log of the proxy's connection managers and
// tcp_proxies of class, as istiod's AccessLogBuilder (setHTTPAccessLog,
// setTCPAccessLog in pilot/pkg/networking/core/accesslog.go) builds it:
// from the Telemetry API's resolution (push.AccessLogging) when it names
// any provider, one access_log per enabled provider sorted by name, with
// its filter; else from MeshConfig accessLogFile.
// accessLogMemo is a generation's access_log per listener class: every
// connection manager and tcp_proxy of a class shares it.
type accessLogMemo map[model.ListenerClass][]*accesslogv3.AccessLog

func (g *generation) accessLog(class model.ListenerClass) ([]*accesslogv3.AccessLog, error) {
	if al, ok := g.accessLogs[class]; ok {
		return al, nil
	}
	al, err := g.buildAccessLog(class)
	if err != nil {
		return nil, err
	}
	if g.accessLogs == nil {
		g.accessLogs = accessLogMemo{}
	}
	g.accessLogs[class] = al
	return al, nil
}

func (g *generation) buildAccessLog(class model.ListenerClass) ([]*accesslogv3.AccessLog, error) {
	cfgs := g.push.AccessLogging(g.proxy, class)
	if len(cfgs) == 0 {
		return meshAccessLog(g.push.Mesh)
	}
	var out []*accesslogv3.AccessLog
	for _, c := range cfgs {
		if c.Disabled {
			continue
		}
		al, err := telemetryAccessLog(c.Provider, g.push.Mesh)
		if err != nil {
			return nil, fmt.Errorf("access log provider %q: %w", c.Provider.GetName(), err)
		}
		if c.Filter != nil {
			if al.Filter, err = celAccessLogFilter(c.Filter.GetExpression()); err != nil {
				return nil, err
			}
		}
		out = append(out, al)
	}
	return out, nil
}

// telemetryAccessLog is istiod's telemetryAccessLog for the file
// provider (pilot/pkg/model/telemetry_logging.go): the built-in "envoy"
// provider without a logFormat is formatted by MeshConfig
// (FileAccessLogFromMeshConfig with the provider's path); any other by
// its logFormat (fileAccessLogFromTelemetry). model.AccessLogging returns
// only file providers.
func telemetryAccessLog(p *meshv1alpha1.MeshConfig_ExtensionProvider, mesh *meshv1alpha1.MeshConfig) (*accesslogv3.AccessLog, error) {
	f := p.GetEnvoyFileAccessLog()
	if f == nil {
		return nil, fmt.Errorf("not an envoyFileAccessLog provider")
	}
	if p.GetName() == meshconfig.EnvoyProvider && f.GetLogFormat() == nil {
		return fileAccessLog(f.GetPath(), mesh)
	}
	fl := &filev3.FileAccessLog{Path: f.GetPath()}
	switch lf := f.GetLogFormat().GetLogFormat().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Labels:
		js := lf.Labels
		if len(js.GetFields()) == 0 {
			js = EnvoyJSONLogFormatIstio()
		}
		fl.AccessLogFormat = jsonLogFormat(js)
	default:
		fl.AccessLogFormat = textLogFormat(f.GetLogFormat().GetText())
	}
	return typedAccessLog(fl)
}

// celAccessLogFilter is istiod's buildAccessLogFilterFromTelemetry.
func celAccessLogFilter(expr string) (*accesslogv3.AccessLogFilter, error) {
	typed, err := anypb.New(&celv3.ExpressionFilter{Expression: expr})
	if err != nil {
		return nil, err
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{
		ExtensionFilter: &accesslogv3.ExtensionFilter{Name: CELFilterName,
			ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: typed}},
	}}, nil
}

// meshAccessLog is the access_log MeshConfig asks for on every connection
// manager and tcp_proxy: nil unless accessLogFile is set.
func meshAccessLog(mesh *meshv1alpha1.MeshConfig) ([]*accesslogv3.AccessLog, error) {
	if mesh.GetAccessLogFile() == "" {
		return nil, nil
	}
	al, err := fileAccessLog(mesh.GetAccessLogFile(), mesh)
	if err != nil {
		return nil, err
	}
	return []*accesslogv3.AccessLog{al}, nil
}

// fileAccessLog writes to path as istiod's FileAccessLogFromMeshConfig
// (pilot/pkg/model/telemetry_logging.go) formats it: TEXT with
// accessLogFormat (a newline added when missing) or EnvoyTextLogFormat;
// JSON with accessLogFormat parsed as a JSON object or
// EnvoyJSONLogFormatIstio. pkg/meshconfig has already refused a JSON
// format that does not parse (istiod logs it and uses the default).
func fileAccessLog(path string, mesh *meshv1alpha1.MeshConfig) (*accesslogv3.AccessLog, error) {
	fl := &filev3.FileAccessLog{Path: path}
	switch mesh.GetAccessLogEncoding() {
	case meshv1alpha1.MeshConfig_TEXT:
		fl.AccessLogFormat = textLogFormat(mesh.GetAccessLogFormat())
	case meshv1alpha1.MeshConfig_JSON:
		js := EnvoyJSONLogFormatIstio()
		if f := mesh.GetAccessLogFormat(); f != "" {
			js = &structpb.Struct{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(f), js); err != nil {
				return nil, fmt.Errorf("mesh config accessLogFormat: not a JSON object: %w", err)
			}
		}
		fl.AccessLogFormat = jsonLogFormat(js)
	default:
		return nil, fmt.Errorf("mesh config accessLogEncoding %v is not supported", mesh.GetAccessLogEncoding())
	}
	return typedAccessLog(fl)
}

// textLogFormat is Istio's fileAccessLogFormat: format with a newline
// added when missing, or EnvoyTextLogFormat when empty.
func textLogFormat(format string) *filev3.FileAccessLog_LogFormat {
	if format == "" {
		format = EnvoyTextLogFormat
	} else if !strings.HasSuffix(format, "\n") {
		format += "\n"
	}
	return &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
		Format: &core.SubstitutionFormatString_TextFormatSource{TextFormatSource: &core.DataSource{
			Specifier: &core.DataSource_InlineString{InlineString: format},
		}},
	}}
}

func jsonLogFormat(js *structpb.Struct) *filev3.FileAccessLog_LogFormat {
	return &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
		Format:            &core.SubstitutionFormatString_JsonFormat{JsonFormat: js},
		JsonFormatOptions: &core.JsonFormatOptions{SortProperties: false},
	}}
}

func typedAccessLog(fl *filev3.FileAccessLog) (*accesslogv3.AccessLog, error) {
	typed, err := anypb.New(fl)
	if err != nil {
		return nil, err
	}
	return &accesslogv3.AccessLog{Name: FileAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed}}, nil
}

// outboundClass is the class of the proxy's non-inbound listeners: a
// router's are gateway listeners (Istio's ListenerClassGateway).
func (g *generation) outboundClass() model.ListenerClass {
	if g.proxy.Type == model.Router {
		return model.ListenerClassGateway
	}
	return model.ListenerClassSidecarOutbound
}
