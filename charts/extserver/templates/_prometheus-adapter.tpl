{{/*
The Prometheus adapter (values "prometheusAdapter"): the server's flags, the volume of its
configuration (the release's ConfigMap, or rules.existing) and where it is mounted.
*/}}
{{- define "extserver.prometheusAdapter.configMapName" -}}
{{- default (printf "%s-prometheus-adapter" (include "extserver.fullname" .)) .Values.prometheusAdapter.rules.existing -}}
{{- end -}}

{{- define "extserver.prometheusAdapter.url" -}}
{{- $p := .Values.prometheusAdapter.prometheus -}}
{{- $url := tpl $p.url . -}}
{{- if $p.port }}{{ printf "%s:%v%s" $url $p.port $p.path }}{{ else }}{{ printf "%s%s" $url $p.path }}{{ end -}}
{{- end -}}

{{- define "extserver.prometheusAdapter.args" -}}
{{- $a := .Values.prometheusAdapter -}}
{{- if $a.enabled }}
- --adapter-config=/etc/extserver/adapter/config.yaml
- --prometheus-url={{ include "extserver.prometheusAdapter.url" . }}
- --metrics-relist-interval={{ $a.metricsRelistInterval }}
{{- with $a.metricsMaxAge }}
- --metrics-max-age={{ . }}
{{- end }}
{{- with $a.prometheus.caFile }}
- --prometheus-ca-file={{ . }}
{{- end }}
{{- with $a.prometheus.tokenFile }}
- --prometheus-token-file={{ . }}
{{- end }}
{{- range $a.prometheus.headers }}
- {{ printf "--prometheus-header=%s" . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "extserver.prometheusAdapter.volumeMounts" -}}
{{- if .Values.prometheusAdapter.enabled }}
- name: prometheus-adapter-config
  mountPath: /etc/extserver/adapter
  readOnly: true
{{- end }}
{{- end -}}

{{- define "extserver.prometheusAdapter.volumes" -}}
{{- if .Values.prometheusAdapter.enabled }}
- name: prometheus-adapter-config
  configMap:
    name: {{ include "extserver.prometheusAdapter.configMapName" . }}
{{- end }}
{{- end -}}
