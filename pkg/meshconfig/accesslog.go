package meshconfig

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
)

// checkAccessLog checks the access log fields (accessLogFile,
// accessLogEncoding, accessLogFormat) as the proxies will compile them,
// so a format they would NACK is refused when the mesh config is loaded,
// naming the field. istiod logs a JSON format that does not parse and
// falls back to its default; sluice refuses it instead. The envoy gRPC
// access log service is not implemented and is refused.
func checkAccessLog(mc *meshv1alpha1.MeshConfig) error {
	if mc.GetEnableEnvoyAccessLogService() {
		return fmt.Errorf("enableEnvoyAccessLogService: not supported (sluice has no gRPC access log service; use accessLogFile)")
	}
	format := mc.GetAccessLogFormat()
	if format == "" {
		return nil
	}
	switch mc.GetAccessLogEncoding() {
	case meshv1alpha1.MeshConfig_TEXT:
		if err := accesslog.CheckFormat(format); err != nil {
			return fmt.Errorf("accessLogFormat: %w", err)
		}
	case meshv1alpha1.MeshConfig_JSON:
		js := &structpb.Struct{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(strings.TrimSpace(format)), js); err != nil {
			return fmt.Errorf("accessLogFormat: with accessLogEncoding JSON it must be a JSON object: %s", cleanProtoError(err))
		}
		if err := accesslog.CheckJSONFormat(js); err != nil {
			return fmt.Errorf("accessLogFormat: %w", err)
		}
	}
	return nil
}
