package config

import (
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

// Istio accepts Go-style durations everywhere a Duration appears; so must we.
func TestDecodeGoStyleDurations(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: 30ms
    retries: {attempts: 3, perTryTimeout: 1m30s}
    fault: {delay: {fixedDelay: 7s, percentage: {value: 100}}}
    route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 250ms}, http: {idleTimeout: 24h}}
    outlierDetection: {interval: 0.5s, baseEjectionTime: 3m}
    portLevelSettings:
    - port: {number: 80}
      connectionPool: {tcp: {connectTimeout: 2s}}
`
	res := Decode([]byte(yaml), DecodeOptions{File: "d.yaml"})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	vs := res.Resources[0].Spec.(*networking.VirtualService)
	if got := vs.Http[0].Timeout.AsDuration(); got != 30*time.Millisecond {
		t.Errorf("timeout = %v", got)
	}
	if got := vs.Http[0].Retries.PerTryTimeout.AsDuration(); got != 90*time.Second {
		t.Errorf("perTryTimeout = %v", got)
	}
	if got := vs.Http[0].Fault.Delay.GetFixedDelay().AsDuration(); got != 7*time.Second {
		t.Errorf("fixedDelay = %v", got)
	}
	dr := res.Resources[1].Spec.(*networking.DestinationRule)
	tp := dr.TrafficPolicy
	if got := tp.ConnectionPool.Tcp.ConnectTimeout.AsDuration(); got != 250*time.Millisecond {
		t.Errorf("connectTimeout = %v", got)
	}
	if got := tp.ConnectionPool.Http.IdleTimeout.AsDuration(); got != 24*time.Hour {
		t.Errorf("idleTimeout = %v", got)
	}
	if got := tp.OutlierDetection.Interval.AsDuration(); got != 500*time.Millisecond {
		t.Errorf("interval = %v", got)
	}
	if got := tp.OutlierDetection.BaseEjectionTime.AsDuration(); got != 3*time.Minute {
		t.Errorf("baseEjectionTime = %v", got)
	}
	if got := tp.PortLevelSettings[0].ConnectionPool.Tcp.ConnectTimeout.AsDuration(); got != 2*time.Second {
		t.Errorf("port-level connectTimeout = %v", got)
	}
}

func TestDecodeBadDurationNamesField(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: soon
    route:
    - destination: {host: reviews}
`
	res := Decode([]byte(yaml), DecodeOptions{File: "d.yaml"})
	if len(res.Errors) != 1 || res.Errors[0].Field != "spec.http[0].timeout" {
		t.Fatalf("want one error on spec.http[0].timeout, got %v", res.Errors)
	}
}
