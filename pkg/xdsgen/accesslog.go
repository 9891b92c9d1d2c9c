package xdsgen

import (
	"fmt"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
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

// meshAccessLog is the access_log MeshConfig asks for on every connection
// manager and tcp_proxy, as istiod's FileAccessLogFromMeshConfig
// (pilot/pkg/model/telemetry_logging.go) builds it: nil unless
// accessLogFile is set; TEXT with accessLogFormat (a newline added when
// missing) or EnvoyTextLogFormat; JSON with accessLogFormat parsed as a
// JSON object or EnvoyJSONLogFormatIstio. pkg/meshconfig has already
// refused a JSON format that does not parse (istiod logs it and uses the
// default).
func meshAccessLog(mesh *meshv1alpha1.MeshConfig) ([]*accesslogv3.AccessLog, error) {
	if mesh.GetAccessLogFile() == "" {
		return nil, nil
	}
	fl := &filev3.FileAccessLog{Path: mesh.GetAccessLogFile()}
	switch mesh.GetAccessLogEncoding() {
	case meshv1alpha1.MeshConfig_TEXT:
		format := EnvoyTextLogFormat
		if f := mesh.GetAccessLogFormat(); f != "" {
			format = f
			if !strings.HasSuffix(format, "\n") {
				format += "\n"
			}
		}
		fl.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
			Format: &core.SubstitutionFormatString_TextFormatSource{TextFormatSource: &core.DataSource{
				Specifier: &core.DataSource_InlineString{InlineString: format},
			}},
		}}
	case meshv1alpha1.MeshConfig_JSON:
		js := EnvoyJSONLogFormatIstio()
		if f := mesh.GetAccessLogFormat(); f != "" {
			js = &structpb.Struct{}
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(f), js); err != nil {
				return nil, fmt.Errorf("mesh config accessLogFormat: not a JSON object: %w", err)
			}
		}
		fl.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
			Format:            &core.SubstitutionFormatString_JsonFormat{JsonFormat: js},
			JsonFormatOptions: &core.JsonFormatOptions{SortProperties: false},
		}}
	default:
		return nil, fmt.Errorf("mesh config accessLogEncoding %v is not supported", mesh.GetAccessLogEncoding())
	}
	typed, err := anypb.New(fl)
	if err != nil {
		return nil, err
	}
	return []*accesslogv3.AccessLog{{Name: FileAccessLogName, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed}}}, nil
}
