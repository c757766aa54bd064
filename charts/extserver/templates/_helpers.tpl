{{/* Chart name, truncated to a DNS label. */}}
{{- define "extserver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects; also the Service name the APIServices point at.
Kept to 52 characters so that suffixed names ("-etcd-headless", ...) stay valid labels.
*/}}
{{- define "extserver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "extserver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "extserver.labels" -}}
helm.sh/chart: {{ include "extserver.chart" . }}
{{ include "extserver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: extserver
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the server pods. */}}
{{- define "extserver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extserver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: apiserver
{{- end }}

{{/* Selector labels of the bundled etcd pods. */}}
{{- define "extserver.etcd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extserver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: etcd
{{- end }}

{{/* Labels of the bundled etcd objects. */}}
{{- define "extserver.etcd.labels" -}}
helm.sh/chart: {{ include "extserver.chart" . }}
{{ include "extserver.etcd.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: extserver
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "extserver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "extserver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "extserver.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
PriorityClass of the server pods: priorityClassName, or system-cluster-critical when the
server serves the metrics APIs (metrics.enabled) and none is set.
*/}}
{{- define "extserver.priorityClassName" -}}
{{- $metrics := .Values.metrics | default dict }}
{{- if .Values.priorityClassName }}
{{- .Values.priorityClassName }}
{{- else if and (kindIs "map" $metrics) $metrics.enabled }}
{{- "system-cluster-critical" }}
{{- end }}
{{- end }}

{{/*
One probe of the server container, from dict "name" "probe" (its values) "path" (the
default endpoint). A handler given in the values replaces GET <path> on the https port;
enabled=false renders nothing.
*/}}
{{- define "extserver.probe" -}}
{{- $probe := omit .probe "enabled" }}
{{- if ne (toString .probe.enabled) "false" }}
{{- if not (or $probe.httpGet $probe.tcpSocket $probe.exec $probe.grpc) }}
{{- $_ := set $probe "httpGet" (dict "path" .path "port" "https" "scheme" "HTTPS") }}
{{- end }}
{{- .name }}:
  {{- toYaml $probe | nindent 2 }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the serving certificate. */}}
{{- define "extserver.tlsSecretName" -}}
{{- if eq .Values.tls.type "existingSecret" }}
{{- required "tls.existingSecret.name is required when tls.type=existingSecret" .Values.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "extserver.fullname" .) }}
{{- end }}
{{- end }}

{{/* Name of the cert-manager Certificate of the serving certificate. */}}
{{- define "extserver.certificateName" -}}
{{- printf "%s-serving" (include "extserver.fullname" .) }}
{{- end }}

{{/* DNS names the serving certificate must cover. */}}
{{- define "extserver.dnsNames" -}}
{{- $svc := include "extserver.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.tls.clusterDomain) (printf "%s.%s" $svc $ns) $svc | toJson -}}
{{- end }}

{{/*
Serving CA, certificate and key for tls.type=helm, as JSON {"ca","crt","key","caBundle"}.
Generated once per render and memoised on the root context, so the Secret and the
APIServices (rendered from different files) get the same material. On upgrade the
material stored in the release's Secret is reused (tls.helm.lookup); with
tls.helm.regenerate a new CA is made and the caBundle carries the new and the previous CA
so the aggregator trusts both until every pod serves the new certificate.
*/}}
{{- define "extserver.tlsMaterial" -}}
{{- if not (hasKey . "extserverTLSMaterial") }}
{{- $previous := dict }}
{{- if .Values.tls.helm.lookup }}
{{- $found := lookup "v1" "Secret" .Release.Namespace (include "extserver.tlsSecretName" .) }}
{{- $previous = get (default dict $found) "data" | default dict }}
{{- end }}
{{- $hasPrevious := and (hasKey $previous "ca.crt") (hasKey $previous "tls.crt") (hasKey $previous "tls.key") }}
{{- $material := dict }}
{{- if and $hasPrevious (not .Values.tls.helm.regenerate) }}
{{- $ca := index $previous "ca.crt" | b64dec }}
{{- $material = dict "ca" $ca "crt" (index $previous "tls.crt" | b64dec) "key" (index $previous "tls.key" | b64dec) "caBundle" $ca }}
{{- else }}
{{- $svc := include "extserver.fullname" . }}
{{- $dnsNames := include "extserver.dnsNames" . | fromJsonArray }}
{{- $ca := genCA (printf "%s-ca" $svc) (int .Values.tls.helm.caDurationDays) }}
{{- $cert := genSignedCert (first $dnsNames) nil $dnsNames (int .Values.tls.helm.certDurationDays) $ca }}
{{- $bundle := $ca.Cert }}
{{- if $hasPrevious }}
{{- $bundle = printf "%s\n%s" (trimSuffix "\n" $ca.Cert) (index $previous "ca.crt" | b64dec) }}
{{- end }}
{{- $material = dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key "caBundle" $bundle }}
{{- end }}
{{- $_ := set . "extserverTLSMaterial" $material }}
{{- end }}
{{- get . "extserverTLSMaterial" | toJson }}
{{- end }}

{{/* caBundle (PEM) of the APIServices, or "" when none is rendered. */}}
{{- define "extserver.caBundle" -}}
{{- if eq .Values.tls.type "helm" }}
{{- (include "extserver.tlsMaterial" . | fromJson).caBundle }}
{{- else if eq .Values.tls.type "existingSecret" }}
{{- if .Values.tls.existingSecret.caBundle }}
{{- .Values.tls.existingSecret.caBundle }}
{{- else if .Values.tls.existingSecret.lookup }}
{{- $found := lookup "v1" "Secret" .Release.Namespace .Values.tls.existingSecret.name | default dict }}
{{- $data := get $found "data" | default dict }}
{{- if not (hasKey $data "ca.crt") }}
{{- fail (printf "tls.existingSecret.lookup: Secret %s/%s with a ca.crt key not found (set tls.existingSecret.caBundle instead)" .Release.Namespace .Values.tls.existingSecret.name) }}
{{- end }}
{{- index $data "ca.crt" | b64dec }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when the bundled etcd is rendered, else "". */}}
{{- define "extserver.etcd.bundled" -}}
{{- if and (eq .Values.storage.backend "etcd") .Values.storage.etcd.bundled.enabled }}true{{ end }}
{{- end }}

{{/* Name of the cert-manager self-signed Issuer that roots the chart's CAs. */}}
{{- define "extserver.selfSignedIssuer" -}}
{{- printf "%s-selfsigned" (include "extserver.fullname" .) }}
{{- end }}

{{/* JSON list of the DNS names of the bundled etcd's server/peer certificate. */}}
{{- define "extserver.etcd.dnsNames" -}}
{{- $name := include "extserver.etcd.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $dnsNames := include "extserver.etcd.memberHosts" . | fromJsonArray }}
{{- concat $dnsNames (list (printf "%s.%s.svc" $name $ns) (printf "*.%s.%s.svc" (include "extserver.etcd.headless" .) $ns) "localhost") | toJson }}
{{- end }}

{{/* Name and DNS names of the bundled etcd. */}}
{{- define "extserver.etcd.fullname" -}}
{{- printf "%s-etcd" (include "extserver.fullname" .) }}
{{- end }}
{{- define "extserver.etcd.headless" -}}
{{- printf "%s-etcd-headless" (include "extserver.fullname" .) }}
{{- end }}

{{/* JSON list of the bundled etcd members' DNS names (<pod>.<headless>.<ns>.svc). */}}
{{- define "extserver.etcd.memberHosts" -}}
{{- $name := include "extserver.etcd.fullname" . }}
{{- $headless := include "extserver.etcd.headless" . }}
{{- $hosts := list }}
{{- range $i := until (int .Values.storage.etcd.bundled.replicas) }}
{{- $hosts = append $hosts (printf "%s-%d.%s.%s.svc" $name $i $headless $.Release.Namespace) }}
{{- end }}
{{- toJson $hosts }}
{{- end }}

{{/*
Bundled etcd TLS material as JSON {"ca","serverCrt","serverKey","clientCrt","clientKey"},
memoised like extserver.tlsMaterial and reused on upgrade from the two Secrets.
*/}}
{{- define "extserver.etcd.tlsMaterial" -}}
{{- if not (hasKey . "extserverEtcdTLSMaterial") }}
{{- $name := include "extserver.etcd.fullname" . }}
{{- $server := get (lookup "v1" "Secret" .Release.Namespace (printf "%s-peer" $name) | default dict) "data" | default dict }}
{{- $client := get (lookup "v1" "Secret" .Release.Namespace (printf "%s-client" $name) | default dict) "data" | default dict }}
{{- $material := dict }}
{{- if and (hasKey $server "ca.crt") (hasKey $server "tls.crt") (hasKey $server "tls.key") (hasKey $client "tls.crt") (hasKey $client "tls.key") }}
{{- $material = dict "ca" (index $server "ca.crt" | b64dec) "serverCrt" (index $server "tls.crt" | b64dec) "serverKey" (index $server "tls.key" | b64dec) "clientCrt" (index $client "tls.crt" | b64dec) "clientKey" (index $client "tls.key" | b64dec) }}
{{- else }}
{{- $days := int .Values.storage.etcd.bundled.certDurationDays }}
{{- $dnsNames := include "extserver.etcd.dnsNames" . | fromJsonArray }}
{{- $ca := genCA (printf "%s-ca" $name) $days }}
{{- $serverCert := genSignedCert $name (list "127.0.0.1") $dnsNames $days $ca }}
{{- $clientCert := genSignedCert (include "extserver.fullname" .) nil nil $days $ca }}
{{- $material = dict "ca" $ca.Cert "serverCrt" $serverCert.Cert "serverKey" $serverCert.Key "clientCrt" $clientCert.Cert "clientKey" $clientCert.Key }}
{{- end }}
{{- $_ := set . "extserverEtcdTLSMaterial" $material }}
{{- end }}
{{- get . "extserverEtcdTLSMaterial" | toJson }}
{{- end }}

{{/* Name of the Secret with the server's etcd client certificate ("" when none). */}}
{{- define "extserver.etcd.clientSecretName" -}}
{{- if include "extserver.etcd.bundled" . }}
{{- printf "%s-client" (include "extserver.etcd.fullname" .) }}
{{- else }}
{{- .Values.storage.etcd.tlsSecret }}
{{- end }}
{{- end }}

{{/* Comma-separated --etcd-servers. */}}
{{- define "extserver.etcd.servers" -}}
{{- if include "extserver.etcd.bundled" . }}
{{- $urls := list }}
{{- range $host := include "extserver.etcd.memberHosts" . | fromJsonArray }}
{{- $urls = append $urls (printf "https://%s:2379" $host) }}
{{- end }}
{{- join "," $urls }}
{{- else }}
{{- join "," .Values.storage.etcd.servers }}
{{- end }}
{{- end }}

{{/*
Cross-field checks that JSON Schema cannot express clearly; fail with a message that
names the values to change.
*/}}
{{- define "extserver.validate" -}}
{{- if and (eq .Values.storage.backend "embedded") (gt (int .Values.replicas) 1) }}
{{- fail "storage.backend=embedded serves a single replica: set replicas=1, or use storage.backend=etcd for several replicas" }}
{{- end }}
{{- if and (eq .Values.tls.type "server") (gt (int .Values.replicas) 1) }}
{{- fail "tls.type=server gives each replica its own certificate: set replicas=1, or use tls.type helm, cert-manager or existingSecret" }}
{{- end }}
{{- if and .Values.apiService.selfRegister (ne .Values.tls.type "server") }}
{{- fail "apiService.selfRegister needs tls.type=server (the chart already sets the caBundle for the other TLS types)" }}
{{- end }}
{{- if and .Values.apiService.create (not .Values.apiService.insecureSkipTLSVerify) (eq .Values.tls.type "server") (not .Values.apiService.selfRegister) }}
{{- fail "tls.type=server has no caBundle in the chart: set apiService.selfRegister=true (or, insecurely, apiService.insecureSkipTLSVerify=true)" }}
{{- end }}
{{- if and .Values.apiService.create (not .Values.apiService.insecureSkipTLSVerify) (eq .Values.tls.type "existingSecret") (not .Values.tls.existingSecret.caBundle) (not .Values.tls.existingSecret.lookup) }}
{{- fail "tls.type=existingSecret needs the CA: set tls.existingSecret.caBundle (PEM) or tls.existingSecret.lookup=true" }}
{{- end }}
{{- if and (eq .Values.storage.backend "etcd") (not .Values.storage.etcd.bundled.enabled) (empty .Values.storage.etcd.servers) }}
{{- fail "storage.backend=etcd needs storage.etcd.servers (external etcd) or storage.etcd.bundled.enabled=true" }}
{{- end }}
{{- end }}
