package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// request limit is 3 MiB of object; Istio reads the whole body too).
const maxReviewBytes = 8 << 20

// Handler serves the injection webhook (Istio's Webhook.serveInject):
// an AdmissionReview v1 of a Pod CREATE is answered with the JSON patch
// adding the sidecar, or allowed unchanged when the pod is not to be
// injected. A pod that cannot be injected (an annotation it cannot
// honour) is denied with the reason: the configuration's failurePolicy
// is Fail, so a pod never runs without the proxy it asked for.
type Handler struct {
	// Config returns the template config (read per request: the native
	// sidecar choice follows the cluster's version).
	Config func() Config
	Logger *slog.Logger
	// Metrics, if set, count the requests as istiod's.
	Metrics *Metrics
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(w, fmt.Sprintf("content type %q: want application/json", ct), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil || len(body) > maxReviewBytes {
		http.Error(w, "AdmissionReview body unreadable or too large", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview v1: %v", err), http.StatusBadRequest)
		return
	}
	resp := h.admit(review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&out); err != nil {
		h.Logger.Warn("injection webhook: writing the response", "err", err)
	}
}

// admit counts as istiod's webhook: a request per pod reviewed, then a
// skip, a success or a failure.
func (h *Handler) admit(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return allow
	}
	if m := h.Metrics; m != nil {
		m.Requests.Inc()
		start := time.Now()
		defer func() { m.Time.Observe(time.Since(start).Seconds()) }()
	}
	resp := h.mutate(req)
	if m := h.Metrics; m != nil {
		switch {
		case !resp.Allowed:
			m.Failure.Inc()
		case resp.Patch == nil:
			m.Skip.Inc()
		default:
			m.Success.Inc()
		}
	}
	return resp
}

func (h *Handler) mutate(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		name := req.Name
		if name == "" {
			name = "(unnamed)"
		}
		return deny(fmt.Errorf("pod %s/%s: %w", req.Namespace, name, err))
	}
	name := req.Namespace + "/" + podName(&pod)
	if d := Required(&pod, req.Namespace); !d.Inject {
		h.Logger.Debug("injection skipped", "pod", name, "reason", d.Reason)
		return allow
	}
	mutated, err := Inject(&pod, req.Namespace, h.Config())
	if err != nil {
		h.Logger.Warn("injection refused", "pod", name, "err", err)
		return deny(fmt.Errorf("sidecar injection of pod %s: %w", name, err))
	}
	patch, err := Patch(&pod, mutated)
	if err != nil {
		return deny(fmt.Errorf("sidecar injection of pod %s: %w", name, err))
	}
	pt := admissionv1.PatchTypeJSONPatch
	h.Logger.Info("sidecar injected", "pod", name)
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}

func deny(err error) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Result: &metav1.Status{Message: err.Error(), Code: http.StatusBadRequest, Status: metav1.StatusFailure}}
}

// podName is the name or, for a controller's pod not yet named, its
// generateName with "..." (Istio's potentialPodName).
func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	if p.GenerateName != "" {
		return p.GenerateName + "..."
	}
	return "(unnamed)"
}
