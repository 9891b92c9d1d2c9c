package dataplane

import (
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func fileAccessLog(t *testing.T, path, format string) *accesslogv3.AccessLog {
	t.Helper()
	fl := &filev3.FileAccessLog{Path: path}
	if format != "" {
		fl.AccessLogFormat = &filev3.FileAccessLog_Format{Format: format}
	}
	a, err := anypb.New(fl)
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}
}

// The connection manager's and tcp_proxy's access_log compile to loggers;
// a format with an operator the proxy lacks is NACKed naming it.
func TestAccessLogCompile(t *testing.T) {
	path := t.TempDir() + "/a.log"
	m := baseHCM()
	m.AccessLog = []*accesslogv3.AccessLog{fileAccessLog(t, path, "")}
	chain, err := compileHCMForTest(t, m)
	if err != nil || len(chain.AccessLog) != 1 || chain.AccessLog[0].Path() != path {
		t.Fatalf("compile: %v, %v", chain, err)
	}
	m.AccessLog = []*accesslogv3.AccessLog{fileAccessLog(t, path, "%RESPONSE_CODE% %FILTER_STATE(x)%\n")}
	if _, err := compileHCMForTest(t, m); err == nil || !strings.Contains(err.Error(), "http_connection_manager: access_log[0]") ||
		!strings.Contains(err.Error(), "%FILTER_STATE% is not supported") {
		t.Errorf("NACK = %v", err)
	}
	tcp := func(al ...*accesslogv3.AccessLog) (*TCPRoute, error) {
		a, _ := anypb.New(&tcpproxyv3.TcpProxy{StatPrefix: "t", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}, AccessLog: al})
		return compileTCPProxy(&listener.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}})
	}
	if r, err := tcp(fileAccessLog(t, path, "")); err != nil || len(r.AccessLog) != 1 {
		t.Fatalf("tcp_proxy: %v", err)
	}
	if _, err := tcp(fileAccessLog(t, path, "%DYNAMIC_METADATA(istio)%\n")); err == nil || !strings.Contains(err.Error(), "tcp_proxy: access_log[0]") ||
		!strings.Contains(err.Error(), "%DYNAMIC_METADATA% is not supported") {
		t.Errorf("tcp NACK = %v", err)
	}
}
