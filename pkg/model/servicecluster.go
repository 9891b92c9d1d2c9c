package model

// ServiceCluster is the name a proxy reports its spans under: Istio's
// bootstrap service cluster for the default tracingServiceName
// APP_LABEL_AND_NAMESPACE (pkg/bootstrap/config.go serviceClusterOrDefault,
// labels.GetApp): "<app>.<namespace>", else "<workload>.<namespace>".
func (p *Proxy) ServiceCluster() string {
	ns := p.Namespace
	if ns == "" {
		ns = "default"
	}
	app := p.Labels["app"]
	if app == "" {
		app = p.Labels["app.kubernetes.io/name"]
	}
	switch {
	case app != "":
		return app + "." + ns
	case p.Name != "":
		return p.Name + "." + ns
	}
	return "istio-proxy." + ns
}
