package analysis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	yamlv3 "go.yaml.in/yaml/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// LoadOptions say how to read analysis input.
type LoadOptions struct {
	// DefaultNamespace is given to namespaced resources that name none;
	// empty leaves them without one (istioctl --all-namespaces).
	DefaultNamespace string
	// MeshConfigFile is a MeshConfig YAML file; empty: the defaults.
	MeshConfigFile string
	// IstioNamespace is the control plane's namespace, where the default
	// ingress gateway is assumed; "istio-system" when empty.
	IstioNamespace string
	// Stdin is read for the path "-".
	Stdin io.Reader
}

// defaultIngressGateway is the ingress gateway Pod and Service istioctl
// assumes when it analyzes files only (istio/istio
// pkg/config/analysis/local/defaults.go defaultIstioIngressGateway).
const defaultIngressGateway = `apiVersion: v1
kind: Pod
metadata:
  labels:
    istio: ingressgateway
  name: %[1]s-dummypod
  namespace: %[2]s
spec:
  containers:
    - args:
      name: istio-proxy
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  ports:
  - name: http2
    nodePort: 31380
    port: 80
    protocol: TCP
    targetPort: 80
  - name: https
    nodePort: 31390
    port: 443
    protocol: TCP
    targetPort: 443
  - name: tcp
    nodePort: 31400
    port: 31400
    protocol: TCP
    targetPort: 31400
  - name: tls
    nodePort: 31447
    port: 15443
    protocol: TCP
    targetPort: 15443
  selector:
    istio: ingressgateway
`

// defaults adds the default ingress gateway after the files (so a file's
// own definition wins), unless the mesh config turns ingress off
// (IstiodAnalyzer.AddDefaultResources).
func (l *loader) defaults(mesh *meshv1alpha1.MeshConfig, istioNamespace string) {
	if mesh.GetIngressControllerMode() == meshv1alpha1.MeshConfig_OFF {
		return
	}
	if istioNamespace == "" {
		istioNamespace = "istio-system"
	}
	svc := mesh.GetIngressService()
	if svc == "" {
		svc = "istio-ingressgateway"
	}
	l.file(internalIngressFile, []byte(fmt.Sprintf(defaultIngressGateway, svc, istioNamespace)))
}

// internalIngressFile is the origin of the default ingress gateway.
const internalIngressFile = "internal-ingress"

// FileExtensions are the files analysis reads, as istioctl's.
var FileExtensions = []string{".json", ".yaml", ".yml"}

// Load reads the files ("-": opts.Stdin), and every .yaml/.yml/.json
// file under the directories, into a snapshot; files of other extensions
// are listed in Snapshot.SkippedFiles. A path that cannot be read is an error; a
// document that cannot be decoded is recorded in Snapshot.Errors and the
// rest are still read.
func Load(paths []string, opts LoadOptions) (*Snapshot, error) {
	mesh, err := meshconfig.Load(opts.MeshConfigFile)
	if err != nil {
		return nil, err
	}
	var l loader
	l.opts = opts
	var skippedFiles []string
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				return nil, errors.New("analyze: \"-\" given but no standard input")
			}
			data, err := readAllLimited(opts.Stdin, p)
			if err != nil {
				return nil, err
			}
			l.file(p, data)
			continue
		}
		files, skipped, err := expand(p)
		if err != nil {
			return nil, err
		}
		skippedFiles = append(skippedFiles, skipped...)
		for _, f := range files {
			data, err := readLimited(f)
			if err != nil {
				return nil, err
			}
			l.file(f, data)
		}
	}
	l.defaults(mesh, opts.IstioNamespace)
	s := NewSnapshot(l.objects, mesh)
	s.Errors, s.Skipped, s.SkippedFiles = l.errors, l.skipped, skippedFiles
	return s, nil
}

// LoadBytes reads one file's content (named name) into a snapshot with the
// default mesh config.
func LoadBytes(name string, data []byte, opts LoadOptions) *Snapshot {
	var l loader
	l.opts = opts
	l.file(name, data)
	mesh := meshconfig.Default()
	l.defaults(mesh, opts.IstioNamespace)
	s := NewSnapshot(l.objects, mesh)
	s.Errors, s.Skipped = l.errors, l.skipped
	return s
}

// expand lists the files to read under p (p itself when it is a file)
// and those skipped for their extension, as istioctl's gatherFiles.
func expand(p string) (files, skipped []string, err error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, nil, fmt.Errorf("analyze: %w", err)
	}
	if !st.IsDir() {
		if !hasExtension(p) {
			return nil, []string{p}, nil
		}
		return []string{p}, nil, nil
	}
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
		case hasExtension(path):
			files = append(files, path)
		default:
			skipped = append(skipped, path)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("analyze: %w", err)
	}
	return files, skipped, nil
}

func hasExtension(path string) bool {
	for _, ext := range FileExtensions {
		if strings.HasSuffix(path, ext) {
			return true
		}
	}
	return false
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	defer f.Close()
	return readAllLimited(f, path)
}

func readAllLimited(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, config.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("analyze: %s: %w", name, err)
	}
	if len(data) > config.MaxFileBytes {
		return nil, fmt.Errorf("analyze: %s: more than %d bytes", name, config.MaxFileBytes)
	}
	return data, nil
}

type loader struct {
	opts    LoadOptions
	objects []*Object
	errors  config.Errors
	skipped []string
}

func (l *loader) fail(file string, line int, err error) {
	l.errors = append(l.errors, &config.Error{Source: config.Source{File: fmt.Sprintf("%s:%d", file, line)}, Err: err})
}

// file splits data into YAML documents, each with the line it starts on.
func (l *loader) file(name string, data []byte) {
	chunks, err := splitDocuments(data)
	if err != nil {
		l.fail(name, 1, err)
	}
	for i, c := range chunks {
		if i >= config.MaxDocuments {
			l.fail(name, c.line, fmt.Errorf("more than %d documents in one file", config.MaxDocuments))
			return
		}
		if len(c.data) > config.MaxDocumentBytes {
			l.fail(name, c.line, fmt.Errorf("document is %d bytes, more than the limit of %d", len(c.data), config.MaxDocumentBytes))
			continue
		}
		var node yamlv3.Node
		if err := yamlv3.Unmarshal(c.data, &node); err != nil {
			l.fail(name, c.line, fmt.Errorf("invalid YAML: %w", err))
			continue
		}
		if len(node.Content) == 0 || node.Content[0].Kind != yamlv3.MappingNode {
			continue // empty or not an object: nothing to analyze
		}
		l.document(name, c.line, c.data, node.Content[0])
	}
}

// header is what every Kubernetes-style document starts with.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// document reads one document (or each item of a v1 List) at line.
func (l *loader) document(file string, line int, data []byte, node *yamlv3.Node) {
	var h header
	if err := yaml.Unmarshal(data, &h); err != nil {
		l.fail(file, line, fmt.Errorf("not a Kubernetes-style object: %w", err))
		return
	}
	if h.Kind == "List" && h.APIVersion == "v1" {
		for _, item := range listItems(node) {
			raw, err := yamlv3.Marshal(item)
			if err != nil {
				l.fail(file, line+item.Line-1, err)
				continue
			}
			// Field lines stay relative to the List's document.
			l.object(file, line+item.Line-1, line, raw, item)
		}
		return
	}
	l.object(file, line, line, data, node)
}

func listItems(node *yamlv3.Node) []*yamlv3.Node {
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == "items" && node.Content[i+1].Kind == yamlv3.SequenceNode {
			return node.Content[i+1].Content
		}
	}
	return nil
}

// object decodes one resource: the Kubernetes kinds analysis reads itself,
// everything else through pkg/config as the control plane reads it.
//
// line is where the object starts; docLine is where its document starts,
// the line field lines are counted from.
func (l *loader) object(file string, line, docLine int, data []byte, node *yamlv3.Node) {
	var h header
	if err := yaml.Unmarshal(data, &h); err != nil {
		l.fail(file, line, fmt.Errorf("not a Kubernetes-style object: %w", err))
		return
	}
	r, err := decodeWorkload(h, data)
	if err != nil {
		l.fail(file, line, fmt.Errorf("%s %s: %w", h.Kind, h.Metadata.Name, err))
		return
	}
	if r == nil {
		res := config.Decode(data, config.DecodeOptions{File: file, DefaultNamespace: "default"})
		for _, e := range res.Errors {
			e.Source = config.Source{File: fmt.Sprintf("%s:%d", file, line)}
			l.errors = append(l.errors, e)
		}
		for _, s := range res.Skipped {
			l.skipped = append(l.skipped, fmt.Sprintf("%s:%d: %s", file, line, s))
		}
		for _, n := range res.NotEnforced {
			l.skipped = append(l.skipped, fmt.Sprintf("%s:%d: %s", file, line, n))
		}
		if len(res.Resources) != 1 {
			return
		}
		r = res.Resources[0]
	}
	if h.Metadata.Namespace == "" && r.Namespace != "" {
		r.Namespace = l.opts.DefaultNamespace
	}
	o := &Object{Resource: r, Origin: Origin{File: file, Line: line}, fields: map[string]int{}}
	buildFieldPathMap(node, docLine, "", o.fields)
	l.objects = append(l.objects, o)
}

// decodeWorkload reads the Kubernetes kinds pkg/config does not: Pods,
// Deployments and Nodes. It returns nil for any other kind.
func decodeWorkload(h header, data []byte) (*config.Resource, error) {
	var r *config.Resource
	switch {
	case h.APIVersion == "v1" && h.Kind == string(KindPod):
		var p corev1.Pod
		if err := yaml.Unmarshal(data, &p); err != nil {
			return nil, err
		}
		// The whole Pod, as pkg/config decodes KindPod (CONTRACT11).
		r = &config.Resource{Kind: KindPod, Meta: meta(p.ObjectMeta), Spec: &p}
	case h.APIVersion == "apps/v1" && h.Kind == string(KindDeployment):
		var d appsv1.Deployment
		if err := yaml.Unmarshal(data, &d); err != nil {
			return nil, err
		}
		r = &config.Resource{Kind: KindDeployment, Meta: meta(d.ObjectMeta), Spec: &d.Spec}
	case h.APIVersion == "v1" && h.Kind == string(KindNode):
		var n corev1.Node
		if err := yaml.Unmarshal(data, &n); err != nil {
			return nil, err
		}
		r = &config.Resource{Kind: KindNode, Meta: meta(n.ObjectMeta), Spec: &n}
		r.Namespace = ""
		return r, nil
	default:
		return nil, nil
	}
	if r.Name == "" {
		return nil, errors.New("metadata.name: missing")
	}
	r.APIVersion = h.APIVersion
	if r.Namespace == "" {
		r.Namespace = "default" // replaced by the load's default namespace
	}
	return r, nil
}

func meta(m metav1.ObjectMeta) config.Meta {
	return config.Meta{Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations}
}

type chunk struct {
	data []byte
	line int
}

const separator = "---"

// splitDocuments splits YAML at "---" lines, recording the line each
// document starts on (its first line that is neither empty nor a
// separator, comments included), as Istio's kubeyaml.YAMLReader.Read does
// for istioctl's file:line references. A document's data starts at that
// line, so YAML node lines count from it (Istio trims the chunk).
func splitDocuments(data []byte) ([]chunk, error) {
	var chunks []chunk
	var buf bytes.Buffer
	start, found := 0, false
	flush := func() {
		if len(bytes.TrimSpace(buf.Bytes())) > 0 {
			chunks = append(chunks, chunk{data: append([]byte(nil), buf.Bytes()...), line: start})
		}
		buf.Reset()
		found = false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), config.MaxDocumentBytes+1)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.HasPrefix(text, separator) && strings.TrimRightFunc(text[len(separator):], unicode.IsSpace) == "" {
			flush()
			continue
		}
		if !found {
			if text == "" {
				continue // lines before the document's first do not count
			}
			start, found = n, true
		}
		buf.WriteString(text)
		buf.WriteByte('\n')
	}
	flush()
	return chunks, sc.Err()
}
