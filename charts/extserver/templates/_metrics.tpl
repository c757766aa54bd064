{{/*
The metrics group-versions this release serves (values "metrics"), as a list of
dicts {name, group, version, groupPriorityMinimum, versionPriority}; empty unless
metrics.enabled. One APIService each: only one server in a cluster may own each of them.
*/}}
{{- define "extserver.metrics.apiServices" -}}
{{- $m := .Values.metrics -}}
{{- $out := list -}}
{{- if $m.enabled -}}
{{- range $key, $gv := dict "resourceMetrics" (list "metrics.k8s.io" "v1beta1") "customMetricsV1beta1" (list "custom.metrics.k8s.io" "v1beta1") "customMetricsV1beta2" (list "custom.metrics.k8s.io" "v1beta2") "externalMetrics" (list "external.metrics.k8s.io" "v1beta1") -}}
{{- $svc := index $m.apiServices $key -}}
{{- if $svc.enabled -}}
{{- $out = append $out (dict "group" (index $gv 0) "version" (index $gv 1) "groupPriorityMinimum" $svc.groupPriorityMinimum "versionPriority" $svc.versionPriority) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Is a group among the served metrics APIServices? (call with list root group) */}}
{{- define "extserver.metrics.serves" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- range (include "extserver.metrics.apiServices" $root | fromJsonArray) -}}
{{- if eq .group $group }}true{{ end -}}
{{- end -}}
{{- end -}}
