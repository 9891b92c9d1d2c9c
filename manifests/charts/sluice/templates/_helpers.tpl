{{/* The revision as labels carry it: "default" for "". */}}
{{- define "sluice.revision" -}}
{{ .Values.revision | default "default" }}
{{- end }}

{{/* istiod, istiod-<revision>: the control plane's Deployment, Service and ServiceAccount. */}}
{{- define "sluice.istiod" -}}
istiod{{ if .Values.revision }}-{{ .Values.revision }}{{ end }}
{{- end }}

{{/* The image every sluice container runs. */}}
{{- define "sluice.image" -}}
{{ .Values.hub }}/sluice:{{ .Values.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The labels every object of this chart carries: uninstall prunes by them
(app.kubernetes.io/managed-by=sluice; sluice.io/revision for one revision's).
*/}}
{{- define "sluice.labels" -}}
app.kubernetes.io/managed-by: sluice
app.kubernetes.io/part-of: sluice
sluice.io/revision: {{ include "sluice.revision" . | quote }}
{{- end }}

{{/*
The pod's volumes a mesh proxy needs (as the injection template's): its
service account token for the CA (audience istio-ca) and the mesh root.
*/}}
{{- define "sluice.proxyVolumes" -}}
- name: istio-token
  projected:
    sources:
    - serviceAccountToken:
        audience: istio-ca
        expirationSeconds: 43200
        path: istio-token
- name: istiod-ca-cert
  configMap:
    name: istio-ca-root-cert
{{- end }}
