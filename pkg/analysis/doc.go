// Package analysis is sluice's port of Istio's configuration analyzers
// (istio/istio pkg/config/analysis, run by `istioctl analyze`): checks over
// a snapshot of loaded configuration for mistakes no single resource's
// validation can see, reported as Istio's messages (codes, levels and
// texts from messages.yaml).
//
// A Snapshot is built by Load from YAML files: the mesh kinds decode
// through pkg/config as the control plane reads them, and the Kubernetes
// kinds only analysis needs (Pods, Deployments, Nodes) through this
// package's own small decoder. Each analyzer is one function over the
// Snapshot, in its own file, named as Istio names it; Run runs all or some
// of them and returns their messages.
package analysis

//go:generate go run ./internal/msggen messages.yaml messages_gen.go
