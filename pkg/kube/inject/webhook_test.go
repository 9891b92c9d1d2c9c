package inject

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestHandlerRequests: what is not an AdmissionReview of a Pod CREATE is
// refused or allowed unchanged, never injected.
func TestHandlerRequests(t *testing.T) {
	h := &Handler{Config: func() Config { return testConfig }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(ct, body string) (int, *admissionv1.AdmissionReview) {
		resp, err := http.Post(srv.URL, ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r admissionv1.AdmissionReview
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, &r
	}
	if code, _ := post("text/plain", "{}"); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", code)
	}
	if code, _ := post("application/json", "{}"); code != http.StatusBadRequest {
		t.Errorf("review without request: %d", code)
	}
	review := func(kind string, op admissionv1.Operation, obj string) string {
		b, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
				Operation: op, Namespace: "ns", Object: runtime.RawExtension{Raw: []byte(obj)}},
		})
		return string(b)
	}
	pod := `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app","image":"x"}]}}`
	for _, c := range []struct {
		name, body string
		patched    bool
	}{
		{"pod create", review("Pod", admissionv1.Create, pod), true},
		{"pod update", review("Pod", admissionv1.Update, pod), false},
		{"configmap", review("ConfigMap", admissionv1.Create, `{"metadata":{"name":"c"}}`), false},
	} {
		code, r := post("application/json; charset=utf-8", c.body)
		if code != 200 || r.Response == nil || !r.Response.Allowed || r.Response.UID != "u1" || (r.Response.Patch != nil) != c.patched {
			t.Errorf("%s: %d %+v", c.name, code, r.Response)
		}
	}
	code, r := post("application/json", review("Pod", admissionv1.Create, `{"metadata":{"name":"p"},"spec":42}`))
	if code != 200 || r.Response == nil || r.Response.Allowed || !bytes.Contains([]byte(r.Response.Result.Message), []byte("pod ns/(unnamed): json")) {
		t.Errorf("malformed pod: %d %+v", code, r.Response)
	}
}
