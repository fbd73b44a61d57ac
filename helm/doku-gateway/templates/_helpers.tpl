{{/*
Names and labels.
*/}}
{{- define "doku-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "doku-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "doku-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every pod of the release: the gateway, the reconcile job and the test pod. */}}
{{- define "doku-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "doku-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The gateway pods only: what the Service, the workload, the PDB and anti-affinity select. */}}
{{- define "doku-gateway.gatewaySelectorLabels" -}}
{{ include "doku-gateway.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "doku-gateway.labels" -}}
helm.sh/chart: {{ include "doku-gateway.chart" . }}
{{ include "doku-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "doku-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "doku-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "doku-gateway.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{/*
Fixed locations inside the container; the image's CMD and the README use the same ones.
*/}}
{{- define "doku-gateway.configDir" -}}/etc/doku-gateway{{- end }}
{{- define "doku-gateway.configPath" -}}/etc/doku-gateway/config.toml{{- end }}
{{- define "doku-gateway.secretsDir" -}}/etc/doku-gateway/secrets{{- end }}
{{- define "doku-gateway.dataDir" -}}/var/lib/doku-gateway{{- end }}
{{- define "doku-gateway.redisDir" -}}/etc/doku-gateway/redis{{- end }}

{{/* The port the gateway listens on: config.http.port. */}}
{{- define "doku-gateway.port" -}}
{{- (.Values.config.http | default dict).port | default 8080 | int -}}
{{- end }}

{{/* The Secret holding the client secret and keys: an existing one, or the chart's own. */}}
{{- define "doku-gateway.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "doku-gateway.fullname" .) -}}
{{- end }}

{{/*
The file name (Secret item) of one credential, or "" when it is not used.
Call with (dict "root" $ "item" "clientSecret").
Required items always have a name. Optional items (merchantPrivateKeyPassword, merchantPublicKey,
and the rotation's clientSecretNext, dokuPublicKeyNext) are used when secrets.items names them, or, for the chart-created Secret, when a value is given
(under the default file name).
*/}}
{{- define "doku-gateway.secretItem" -}}
{{- $s := .root.Values.secrets -}}
{{- $defaults := dict "clientSecret" "client-secret" "dokuPublicKey" "doku-public-key.pem" "merchantPrivateKey" "merchant-private-key.pem" "merchantPrivateKeyPassword" "merchant-private-key-password" "merchantPublicKey" "merchant-public-key.pem" "clientSecretNext" "client-secret-next" "dokuPublicKeyNext" "doku-public-key-next.pem" -}}
{{- $required := list "clientSecret" "dokuPublicKey" "merchantPrivateKey" -}}
{{- $name := index ($s.items | default dict) .item | default "" -}}
{{- if and (not $name) (has .item $required) -}}
{{- $name = index $defaults .item -}}
{{- end -}}
{{- if and (not $name) (not $s.existingSecret) (index $s .item) -}}
{{- $name = index $defaults .item -}}
{{- end -}}
{{- if and $name (not $s.existingSecret) (not (has .item $required)) (not (index $s .item)) -}}
{{- $name = "" -}}
{{- end -}}
{{- $name -}}
{{- end }}

{{/*
One TOML value from a values.yaml value: strings as JSON-escaped basic strings (valid TOML),
whole numbers as integers (values.yaml numbers arrive as float64), maps as inline tables,
lists as arrays. Recursive.
*/}}
{{- define "doku-gateway.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- toJson $v -}}
{{- else if kindIs "bool" $v -}}
{{- ternary "true" "false" $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 $v) (float64 (int64 $v)) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{- $v -}}
{{- else if kindIs "slice" $v -}}
[{{- range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "doku-gateway.tomlValue" $e }}{{- end -}}]
{{- else if kindIs "map" $v -}}
{ {{- $first := true -}}
{{- range $k, $e := $v -}}
{{- if not (kindIs "invalid" $e) -}}
{{- if not $first }},{{ end }} {{ include "doku-gateway.tomlKey" $k }} = {{ include "doku-gateway.tomlValue" $e -}}
{{- $first = false -}}
{{- end -}}
{{- end }} }
{{- else -}}
{{- fail (printf "doku-gateway: cannot write %v (%s) as a TOML value" $v (kindOf $v)) -}}
{{- end -}}
{{- end }}

{{/* A TOML key: bare when it can be, quoted otherwise. */}}
{{- define "doku-gateway.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end }}

{{/* `key = value` lines of one table, skipping nulls (a key set to null falls back to the
gateway's built-in default). */}}
{{- define "doku-gateway.tomlPairs" -}}
{{- range $key, $value := . }}
{{- if not (kindIs "invalid" $value) }}
{{ include "doku-gateway.tomlKey" $key }} = {{ include "doku-gateway.tomlValue" $value }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The gateway's config.toml (see gateway/config.py). Secrets and keys are never written here:
they are `file:` references to the Secret mounted at /etc/doku-gateway/secrets.
*/}}
{{- define "doku-gateway.configToml" -}}
{{- $cfg := .Values.config -}}
{{- $dir := include "doku-gateway.secretsDir" . -}}
# Rendered by the doku-gateway Helm chart from .Values.config; edit values, not this file.
{{- with $cfg.log_level }}
log_level = {{ include "doku-gateway.tomlValue" . }}
{{- end }}
{{- with $cfg.log_format }}
log_format = {{ include "doku-gateway.tomlValue" . }}
{{- end }}

[doku]
client_id = {{ include "doku-gateway.tomlValue" (.Values.doku.clientId | toString) }}
client_secret = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir (include "doku-gateway.secretItem" (dict "root" . "item" "clientSecret"))) }}
public_key = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir (include "doku-gateway.secretItem" (dict "root" . "item" "dokuPublicKey"))) }}
{{- with include "doku-gateway.secretItem" (dict "root" . "item" "clientSecretNext") }}
client_secret_next = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir .) }}
{{- end }}
{{- with include "doku-gateway.secretItem" (dict "root" . "item" "dokuPublicKeyNext") }}
public_key_next = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir .) }}
{{- end }}

[merchant]
private_key = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir (include "doku-gateway.secretItem" (dict "root" . "item" "merchantPrivateKey"))) }}
{{- with include "doku-gateway.secretItem" (dict "root" . "item" "merchantPrivateKeyPassword") }}
private_key_password = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir .) }}
{{- end }}
{{- with include "doku-gateway.secretItem" (dict "root" . "item" "merchantPublicKey") }}
public_key = {{ include "doku-gateway.tomlValue" (printf "file:%s/%s" $dir .) }}
{{- end }}
{{- range $section := list "paths" "http" "security" "inquiry" "cache" "client" "payment" }}
{{- $table := index $cfg $section | default dict }}
{{- if and (eq $section "cache") $.Values.redis.urlSecret.name }}
{{- $table = set (deepCopy $table) "url" (printf "file:%s/url" (include "doku-gateway.redisDir" $)) }}
{{- end }}

[{{ $section }}]
{{- include "doku-gateway.tomlPairs" $table }}
{{- end }}
{{- range $resolver := $cfg.resolvers }}

[[resolvers]]
{{- include "doku-gateway.tomlPairs" (omit $resolver "options") }}
{{- with $resolver.options }}
[resolvers.options]
{{- include "doku-gateway.tomlPairs" . }}
{{- end }}
{{- end }}
{{ end }}

{{/*
Checks that fail the install early instead of leaving a pod in CrashLoopBackOff.
*/}}
{{- define "doku-gateway.validate" -}}
{{- if not .Values.demo.enabled }}
{{- if not .Values.doku.clientId }}
{{- fail "doku.clientId is required: the client ID DOKU issued to the merchant (or set demo.enabled=true to try the chart)" }}
{{- end }}
{{- if not .Values.config.resolvers }}
{{- fail "config.resolvers is empty: configure at least one resolver (name, use, partner_service_ids or default)" }}
{{- end }}
{{- if not .Values.secrets.existingSecret }}
{{- range $item := list "clientSecret" "dokuPublicKey" "merchantPrivateKey" }}
{{- if not (index $.Values.secrets $item) }}
{{- fail (printf "secrets.%s is required when secrets.existingSecret is not set" $item) }}
{{- end }}
{{- end }}
{{- end }}
{{- $journal := ((.Values.config.payment | default dict).journal | default "auto") }}
{{- if and (eq $journal "redis") (not (include "doku-gateway.hasRedis" .)) }}
{{- fail "config.payment.journal is \"redis\" but no Redis URL reaches the gateway: set config.cache.url or redis.urlSecret" }}
{{- end }}
{{- end }}
{{- if eq (include "doku-gateway.journal" .) "file" }}
{{- if not (include "doku-gateway.persistent" .) }}
{{- fail "config.payment.journal is a file journal (no Redis in config.cache.url or redis.urlSecret) and persistence.enabled=false puts it on an emptyDir: acknowledged payments whose hook has not run would be lost with the pod. Use a Redis journal, or leave persistence.enabled unset for a PersistentVolumeClaim" }}
{{- end }}
{{- if include "doku-gateway.multiReplica" . }}
{{- fail "a file payment journal is for one process: keep replicaCount 1 and autoscaling off, or use a Redis journal (config.cache.url or redis.urlSecret)" }}
{{- end }}
{{- end }}
{{- if and (include "doku-gateway.persistent" .) (eq .Values.workload.kind "Deployment") }}
{{- if eq ((.Values.strategy | default dict).type | default "") "RollingUpdate" }}
{{- fail "strategy.type=RollingUpdate with a PersistentVolumeClaim on /var/lib/doku-gateway: the new pod would share the claim (and a file journal) with the old one. Use Recreate, or leave strategy empty" }}
{{- end }}
{{- if include "doku-gateway.multiReplica" . }}
{{- fail "persistence with a Deployment of more than one pod: the pods would share one claim. Use workload.kind=StatefulSet (a claim per pod), or persistence.enabled=false with a Redis journal" }}
{{- end }}
{{- end }}
{{- if and (eq (toString .Values.reconcile.enabled) "true") (ne (include "doku-gateway.journal" .) "redis") }}
{{- fail "reconcile.enabled=true needs a Redis payment journal (config.cache.url or redis.urlSecret): a file journal belongs to the one gateway pod" }}
{{- end }}
{{- end }}

{{/*
The payment journal the gateway will use: "redis", "file", or "demo" (serve --demo keeps its
own under /tmp). Mirrors Settings.journal_on_redis in gateway/config.py.
*/}}
{{- define "doku-gateway.journal" -}}
{{- if .Values.demo.enabled -}}
demo
{{- else -}}
{{- $journal := (.Values.config.payment | default dict).journal | default "auto" -}}
{{- if or (eq $journal "redis") (and (eq $journal "auto") (include "doku-gateway.hasRedis" .)) -}}
redis
{{- else -}}
file
{{- end -}}
{{- end -}}
{{- end }}

{{/* True (non-empty) when /var/lib/doku-gateway is a PersistentVolumeClaim. */}}
{{- define "doku-gateway.persistent" -}}
{{- $p := .Values.persistence -}}
{{- if $p.existingClaim -}}
true
{{- else if kindIs "bool" $p.enabled -}}
{{- if $p.enabled }}true{{ end -}}
{{- else if eq (include "doku-gateway.journal" .) "file" -}}
true
{{- end -}}
{{- end }}

{{/* True (non-empty) when the reconcile CronJob is rendered. */}}
{{- define "doku-gateway.reconcileEnabled" -}}
{{- $enabled := .Values.reconcile.enabled -}}
{{- if kindIs "bool" $enabled -}}
{{- if $enabled }}true{{ end -}}
{{- else if eq (include "doku-gateway.journal" .) "redis" -}}
true
{{- end -}}
{{- end }}

{{/* True (non-empty) when a Redis URL reaches the gateway, through the TOML or the environment. */}}
{{- define "doku-gateway.hasRedis" -}}
{{- $url := (.Values.config.cache | default dict).url | default "memory://" -}}
{{- if not (hasPrefix "memory:" $url) }}true{{ end -}}
{{- if .Values.redis.urlSecret.name }}true{{ end -}}
{{- range .Values.extraEnv }}
{{- if has .name (list "DOKU_GATEWAY_REDIS_URL" "DOKU_GATEWAY_CACHE_URL") }}true{{ end -}}
{{- end -}}
{{- end }}

{{/* More than one pod may run at once (HPA or replicaCount > 1). */}}
{{- define "doku-gateway.multiReplica" -}}
{{- if .Values.autoscaling.enabled -}}
{{- if gt (int .Values.autoscaling.maxReplicas) 1 }}true{{ end -}}
{{- else if gt (int .Values.replicaCount) 1 }}true{{ end -}}
{{- end }}
