package ca

// The SDS resource names under which a workload's identity is served to
// its proxy: its certificate and key, and the mesh roots. They are Istio's
// (istio/istio pkg/security/security.go: WorkloadKeyCertResourceName and
// RootCertReqResourceName), so the generator's config (pkg/xdsgen) and the
// proxy that resolves it (pkg/proxy/dataplane) name them alike.
const (
	SDSWorkloadCert = "default"
	SDSRootCA       = "ROOTCA"
)
