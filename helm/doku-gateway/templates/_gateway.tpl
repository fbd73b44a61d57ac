{{/*
The gateway's pod template, shared by the Deployment and the StatefulSet. The StatefulSet passes
claimTemplate=true when its volumeClaimTemplate provides the `data` volume.
Call with (dict "root" $ "claimTemplate" bool).
*/}}
{{- define "doku-gateway.gatewayPodTemplate" -}}
{{- $root := .root -}}
{{- with $root -}}
{{- $port := include "doku-gateway.port" . | int -}}
{{- $annotations := dict -}}
{{- if not .Values.demo.enabled -}}
{{- $_ := set $annotations "checksum/config" (include (print .Template.BasePath "/configmap.yaml") . | sha256sum) -}}
{{- if not .Values.secrets.existingSecret -}}
{{- $_ := set $annotations "checksum/secret" (include (print .Template.BasePath "/secret.yaml") . | sha256sum) -}}
{{- end -}}
{{- end -}}
{{- if .Values.metrics.podAnnotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (toString $port) -}}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- $annotations = merge (deepCopy (.Values.podAnnotations | default dict)) $annotations -}}
metadata:
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  labels:
    {{- include "doku-gateway.labels" . | nindent 4 }}
    app.kubernetes.io/component: gateway
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- include "doku-gateway.podCommon" . | nindent 2 }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: doku-gateway
      {{- include "doku-gateway.containerCommon" . | nindent 6 }}
      {{- if .Values.demo.enabled }}
      args: ["serve", "--demo", "--demo-dir", "/tmp/doku-demo", "--host", "0.0.0.0", "--port", {{ $port | quote }}]
      {{- else }}
      args: ["serve", "--config", {{ include "doku-gateway.configPath" . | quote }}]
      {{- end }}
      ports:
        - name: http
          containerPort: {{ $port }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /livez
          port: http
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- if .Values.startupProbe.enabled }}
      startupProbe:
        httpGet:
          path: /livez
          port: http
        {{- toYaml (omit .Values.startupProbe "enabled") | nindent 8 }}
      {{- end }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ .Values.preStopSleepSeconds | int | toString | quote }}]
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  volumes:
    {{- include "doku-gateway.volumesCommon" . | nindent 4 }}
    {{- if .Values.persistence.existingClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim }}
    {{- else if include "doku-gateway.persistent" . }}
    {{- if not $.claimTemplate }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ include "doku-gateway.fullname" . }}-data
    {{- end }}
    {{- else }}
    {{- include "doku-gateway.dataEmptyDir" . | nindent 4 }}
    {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if eq .Values.podAntiAffinityPreset "soft" }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "doku-gateway.gatewaySelectorLabels" . | nindent 16 }}
  {{- else if eq .Values.podAntiAffinityPreset "hard" }}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "doku-gateway.gatewaySelectorLabels" . | nindent 14 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    - labelSelector:
        {{- if .labelSelector }}
        {{- toYaml .labelSelector | nindent 8 }}
        {{- else }}
        matchLabels:
          {{- include "doku-gateway.gatewaySelectorLabels" $root | nindent 10 }}
        {{- end }}
      {{- toYaml (omit . "labelSelector") | nindent 6 }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
