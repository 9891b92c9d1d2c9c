package meshconfig

import (
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

func TestAccessLogFields(t *testing.T) {
	mc, err := Parse([]byte("accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: '{\"code\": \"%RESPONSE_CODE%\"}'\n"), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if mc.AccessLogFile != "/dev/stdout" || mc.AccessLogEncoding != meshv1alpha1.MeshConfig_JSON || !strings.Contains(mc.AccessLogFormat, "RESPONSE_CODE") {
		t.Fatalf("access log fields not read: %v", mc)
	}
	bad := []struct{ yaml, want string }{
		{"accessLogFile: /tmp/a\naccessLogFormat: \"%NOPE% %RESPONSE_CODE%\"\n", "command operator %NOPE% is not supported"},
		{"accessLogFile: /tmp/a\naccessLogFormat: \"%START_TIME(%s)%\"\n", "START_TIME"},
		{"accessLogFile: /tmp/a\naccessLogEncoding: JSON\naccessLogFormat: \"not json\"\n", "accessLogFormat: with accessLogEncoding JSON it must be a JSON object"},
		{"accessLogFile: /tmp/a\naccessLogEncoding: JSON\naccessLogFormat: '{\"a\": \"%BOGUS%\"}'\n", "json_format.a"},
		{"enableEnvoyAccessLogService: true\n", "enableEnvoyAccessLogService: not supported"},
		{"accessLogEncoding: XML\n", "accessLogEncoding"},
	}
	for _, c := range bad {
		_, err := Parse([]byte(c.yaml), "mesh.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "mesh.yaml") {
			t.Errorf("Parse(%q) = %v, want an error naming the file and %q", c.yaml, err, c.want)
		}
	}
}
