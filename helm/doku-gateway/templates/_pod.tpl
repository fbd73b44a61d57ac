{{/*
Pieces shared by every pod of the release (the gateway, the reconcile job, the test pod), so
they run with the same image, identity and pod security.
*/}}

{{/* Pod-level settings: service account, pull secrets, pod security context, placement. */}}
{{- define "doku-gateway.podCommon" -}}
serviceAccountName: {{ include "doku-gateway.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Image and container security context. */}}
{{- define "doku-gateway.containerImage" -}}
image: {{ include "doku-gateway.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A container that runs the gateway's command line with config.toml: image, security context,
working directory, environment and mounts (the data volume included).
*/}}
{{- define "doku-gateway.containerCommon" -}}
{{ include "doku-gateway.containerImage" . }}
# Relative paths the gateway writes (e.g. in demo mode) land on the data volume.
workingDir: {{ include "doku-gateway.dataDir" . }}
env:
  - name: PYTHONUNBUFFERED
    value: "1"
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .Values.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: data
    mountPath: {{ include "doku-gateway.dataDir" . }}
  {{- if not .Values.demo.enabled }}
  - name: config
    mountPath: {{ include "doku-gateway.configPath" . }}
    subPath: config.toml
    readOnly: true
  - name: secrets
    mountPath: {{ include "doku-gateway.secretsDir" . }}
    readOnly: true
  {{- if .Values.redis.urlSecret.name }}
  - name: redis-url
    mountPath: {{ include "doku-gateway.redisDir" . }}
    readOnly: true
  {{- end }}
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* The volumes behind containerCommon's mounts, except `data`, which each workload chooses. */}}
{{- define "doku-gateway.volumesCommon" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if not .Values.demo.enabled }}
- name: config
  configMap:
    name: {{ include "doku-gateway.fullname" . }}
- name: secrets
  secret:
    secretName: {{ include "doku-gateway.secretName" . }}
    defaultMode: {{ .Values.secrets.defaultMode | int }}
{{- with .Values.redis.urlSecret }}
{{- if .name }}
- name: redis-url
  secret:
    secretName: {{ .name }}
    defaultMode: {{ $.Values.secrets.defaultMode | int }}
    items:
      - key: {{ .key }}
        path: url
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The data volume as an emptyDir (no claim). */}}
{{- define "doku-gateway.dataEmptyDir" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.persistence.sizeLimit }}
{{- end }}

{{/* Spec of the claim the chart makes for the data directory (PVC or volumeClaimTemplate). */}}
{{- define "doku-gateway.claimSpec" -}}
{{- $p := .Values.persistence -}}
accessModes:
  {{- toYaml $p.accessModes | nindent 2 }}
{{- if not (kindIs "invalid" $p.storageClass) }}
storageClassName: {{ $p.storageClass | quote }}
{{- end }}
resources:
  requests:
    storage: {{ $p.size }}
{{- end }}

{{/*
checkov (CKV_K8S_11) wants a CPU limit on every container. The gateway is one uvicorn process
on one core: a CFS quota only adds throttling pauses to inquiries that banks time out after
about 8 s, so its pods scale by replicas (and the HPA on CPU requests) instead.
*/}}
{{- define "doku-gateway.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_11=one event loop per pod, a CPU quota only throttles inquiries; scale by replicas"
{{- end }}

{{/* The helm test pod runs once and exits: liveness and readiness probes have nothing to watch. */}}
{{- define "doku-gateway.checkovSkipsTestPod" -}}
checkov.io/skip1: "CKV_K8S_8=a one-shot test pod that exits in seconds has no liveness to probe"
checkov.io/skip2: "CKV_K8S_9=a one-shot test pod serves nothing, so it has no readiness to probe"
{{- end }}
