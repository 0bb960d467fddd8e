{{/* The chart's name, or nameOverride. */}}
{{- define "notebookswarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release's name, with the chart's name appended
unless the release's name already holds it ("notebookswarm" -> notebookswarm-master).
Kept short enough that "-master"/"-worker"/"-run-N" suffixes stay within 63 characters.
*/}}
{{- define "notebookswarm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The master Service's name: workers and headless runs connect to it. */}}
{{- define "notebookswarm.masterService" -}}
{{- printf "%s-master" (include "notebookswarm.fullname" .) }}
{{- end }}

{{/* The labels of one component's objects and pods: call with (list $ "master"). */}}
{{- define "notebookswarm.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{ include "notebookswarm.selectorLabels" . }}
{{- end }}

{{/* The labels that select one component's pods: call with (list $ "master"). */}}
{{- define "notebookswarm.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "notebookswarm.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "notebookswarm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The key folder a process reads with --keys, as notebookswarm/cluster/keys.py expects it.
The Secret holds the four files of `notebookswarm keygen DIR`; each pod sees only what it
needs. The master: master.key_secret and trusted/*.key (the public keys it admits). A worker
or a headless run (a controller): worker.key_secret and master.key. A worker pod that is
broken into cannot pose as the master. Call with (list $ "master") or (list $ "worker").
*/}}
{{- define "notebookswarm.keysVolume" -}}
{{- $root := index . 0 -}}
- name: keys
  secret:
    secretName: {{ $root.Values.keys.secretName }}
    defaultMode: 0440
    items:
      {{- if eq (index . 1) "master" }}
      - key: master.key_secret
        path: master.key_secret
      - key: master.key
        path: master.key
      {{- range $root.Values.keys.trusted }}
      - key: {{ . }}
        path: trusted/{{ . }}
      {{- end }}
      {{- else }}
      - key: worker.key_secret
        path: worker.key_secret
      - key: worker.key
        path: worker.key
      - key: master.key
        path: master.key
      {{- end }}
{{- end }}

{{/* Pod settings every component shares: no API token, a non-root user, the pull secrets. */}}
{{- define "notebookswarm.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Container settings every component shares. */}}
{{- define "notebookswarm.containerCommon" -}}
image: {{ include "notebookswarm.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/*
A probe that the master's ports are listening, read from /proc/net/tcp{,6} in the pod's own
network namespace. Not a tcpSocket probe: a CurveZMQ master reports every connection that
hangs up before the handshake as a refused peer, so a TCP probe would write a false alarm to
its log every period. Port numbers are in hex there, state 0A is LISTEN.
*/}}
{{- define "notebookswarm.listenProbe" -}}
exec:
  command:
    - sh
    - -c
    - >-
      for port in {{ printf "%04X" (int .Values.master.workerPort) }} {{ printf "%04X" (int .Values.master.controlPort) }};
      do grep -qsE " [0-9A-F]+:$port [0-9A-F]+:0000 0A " /proc/net/tcp /proc/net/tcp6 || exit 1;
      done
{{- end }}
