package nodeagent

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/pkg/capture"
)

func testPod(labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p", Labels: labels, Annotations: annotations}}
}

// TestShouldEnroll: istio-cni's default enablement selectors, with the
// host-network and sidecar exclusions.
func TestShouldEnroll(t *testing.T) {
	ambient := map[string]string{"istio.io/dataplane-mode": "ambient"}
	none := map[string]string{"istio.io/dataplane-mode": "none"}
	hostNet := testPod(ambient, nil)
	hostNet.Spec.HostNetwork = true
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
		ns   map[string]string
		want bool
	}{
		{"namespace labelled", testPod(nil, nil), ambient, true},
		{"pod labelled, namespace not", testPod(ambient, nil), nil, true},
		{"neither", testPod(map[string]string{"app": "x"}, nil), map[string]string{"other": "ambient"}, false},
		{"pod opts out", testPod(none, nil), ambient, false},
		{"pod other mode in ambient namespace", testPod(map[string]string{"istio.io/dataplane-mode": "sidecar"}, nil), ambient, true},
		{"namespace none, pod ambient", testPod(ambient, nil), none, true},
		{"sidecar injected", testPod(ambient, map[string]string{"sidecar.istio.io/status": "{}"}), ambient, false},
		{"host network", hostNet, ambient, false},
	} {
		if got := ShouldEnroll(c.pod, c.ns); got != c.want {
			t.Errorf("%s: ShouldEnroll = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPodIPsAndTerminal(t *testing.T) {
	p := testPod(nil, nil)
	if ips := PodIPs(p); len(ips) != 0 {
		t.Errorf("no IP yet: %v", ips)
	}
	p.Status.PodIP = "10.0.0.1"
	if ips := PodIPs(p); len(ips) != 1 || ips[0] != "10.0.0.1" {
		t.Errorf("podIP: %v", ips)
	}
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}
	if ips := PodIPs(p); len(ips) != 2 || ips[1] != "fd00::1" {
		t.Errorf("podIPs: %v", ips)
	}
	for phase, want := range map[corev1.PodPhase]bool{corev1.PodRunning: false, corev1.PodPending: false, corev1.PodSucceeded: true, corev1.PodFailed: true} {
		p.Status.Phase = phase
		if Terminal(p) != want {
			t.Errorf("%s: Terminal = %v", phase, !want)
		}
	}
}

// TestCaptureOptions: the pod annotations istio-cni reads for the
// in-pod rules, and the refused DNS capture.
func TestCaptureOptions(t *testing.T) {
	base := capture.DefaultInpodOptions()
	o, err := CaptureOptions(testPod(nil, map[string]string{"ambient.istio.io/bypass-inbound-capture": "true",
		"istio.io/reroute-virtual-interfaces": "tun0, tun1", "ambient.istio.io/dns-capture": "false"}), base)
	if err != nil {
		t.Fatal(err)
	}
	if !o.IngressMode || strings.Join(o.VirtualInterfaces, ",") != "tun0,tun1" {
		t.Errorf("options %+v", o)
	}
	if o, _ := CaptureOptions(testPod(nil, nil), base); o.IngressMode || len(o.VirtualInterfaces) != 0 {
		t.Errorf("no annotations: %+v", o)
	}
	for ann, val := range map[string]string{"ambient.istio.io/dns-capture": "true", "ambient.istio.io/bypass-inbound-capture": "yes please"} {
		_, err := CaptureOptions(testPod(nil, map[string]string{ann: val}), base)
		if err == nil || !strings.Contains(err.Error(), "pod shop/p") || !strings.Contains(err.Error(), ann) {
			t.Errorf("%s=%s: error %v, want one naming the pod and the annotation", ann, val, err)
		}
	}
}

// TestPodUIDFromCgroup: cgroup paths of the cgroupfs and systemd drivers
// (istio-cni's podcgroupns_linux_test.go examples).
func TestPodUIDFromCgroup(t *testing.T) {
	for content, want := range map[string]types.UID{
		"12:memory:/kubepods/burstable/pod2c48913c-b29f-11e7-9350-020968147796/9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961\n":              "2c48913c-b29f-11e7-9350-020968147796",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c48913c_b29f_11e7_9350_020968147796.slice/docker-9bca.scope\n":                      "2c48913c-b29f-11e7-9350-020968147796",
		"0::/kubepods-besteffort-pod72f7f152_440c_66ac_9084_e0fc1d8a910c.slice:cri-containerd:b2a102854b4969b2ce98dc329c86b4fb2b06e4ad2cc8da9d8a7578c9cd2004a2": "72f7f152-440c-66ac-9084-e0fc1d8a910c",
		"0::/user.slice/user-0.slice/session-1.scope\n":                  "",
		"4:memory:/process_api/e0f3dc3d3d9d6e9d9904291f7f736a80\n0::/\n": "",
	} {
		if got := PodUIDFromCgroup(content); got != want {
			t.Errorf("%q: %q, want %q", content, got, want)
		}
	}
}
