package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// templatePaths are where each workload kind holds its pod template
// (istioctl kube-inject's IntoObject handles the same kinds).
var templatePaths = map[string][]string{
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
	"DeploymentConfig":      {"spec", "template"},
}

// InjectYAML is `sluice kube-inject`: every Pod, and every pod template
// of a workload, in the multi-document YAML is injected as the webhook
// would (the same Required decision and Inject mutation; the namespace
// labels are not consulted, as istioctl kube-inject's); other documents
// pass through unchanged. defaultNamespace stands for objects without
// one. Errors name the document and object.
func InjectYAML(in io.Reader, defaultNamespace string, cfg Config) ([]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var out bytes.Buffer
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		res, err := injectDocument(doc, defaultNamespace, cfg)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(res)
	}
}

func injectDocument(doc []byte, defaultNamespace string, cfg Config) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return nil, err
	}
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if ns == "" {
		ns = defaultNamespace
	}
	id := fmt.Sprintf("%s %s/%s", kind, ns, name)
	if kind == "List" {
		return injectList(obj, defaultNamespace, cfg)
	}
	if kind == "Pod" {
		var pod corev1.Pod
		if err := yaml.Unmarshal(doc, &pod); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		done, err := injectPod(&pod, ns, cfg)
		if err != nil || done == nil {
			return doc, wrap(id, err)
		}
		return yaml.Marshal(done)
	}
	path, ok := templatePaths[kind]
	if !ok {
		return doc, nil
	}
	parent, tmpl := obj, any(obj)
	for _, k := range path {
		parent, _ = tmpl.(map[string]any)
		if parent == nil {
			return nil, fmt.Errorf("%s: no pod template at %v", id, path)
		}
		tmpl = parent[k]
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return nil, err
	}
	var pt corev1.PodTemplateSpec
	if err := json.Unmarshal(raw, &pt); err != nil {
		return nil, fmt.Errorf("%s: pod template: %w", id, err)
	}
	done, err := injectPod(&corev1.Pod{ObjectMeta: pt.ObjectMeta, Spec: pt.Spec}, ns, cfg)
	if err != nil || done == nil {
		return doc, wrap(id, err)
	}
	done.Namespace = pt.Namespace // a template does not carry it
	raw, err = json.Marshal(corev1.PodTemplateSpec{ObjectMeta: done.ObjectMeta, Spec: done.Spec})
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	parent[path[len(path)-1]] = m
	return yaml.Marshal(obj)
}

// injectPod: nil when the pod is not to be injected.
func injectPod(pod *corev1.Pod, ns string, cfg Config) (*corev1.Pod, error) {
	if !Required(pod, ns).Inject {
		return nil, nil
	}
	ns0 := pod.Namespace
	out, err := Inject(pod, ns, cfg)
	if out != nil {
		out.Namespace = ns0 // kube-inject does not add a namespace
	}
	return out, err
}

func wrap(id string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", id, err)
}

// injectList injects each item of a v1 List (kubectl get -o yaml).
func injectList(list map[string]any, defaultNamespace string, cfg Config) ([]byte, error) {
	items, _ := list["items"].([]any)
	for i, it := range items {
		doc, err := yaml.Marshal(it)
		if err != nil {
			return nil, err
		}
		res, err := injectDocument(doc, defaultNamespace, cfg)
		if err != nil {
			return nil, fmt.Errorf("List item %d: %w", i, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(res, &m); err != nil {
			return nil, err
		}
		items[i] = m
	}
	return yaml.Marshal(list)
}
