{{/*
Chart name, or nameOverride.
*/}}
{{- define "triton-qa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>". Object names add
at most 8 characters ("-gateway"), so the prefix stops at 54 to keep names
within the 63 characters of a DNS label.
*/}}
{{- define "triton-qa.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of one component's objects. Takes (dict "root" $ "component" "triton").
*/}}
{{- define "triton-qa.componentName" -}}
{{- printf "%s-%s" (include "triton-qa.fullname" .root) .component }}
{{- end }}

{{/*
Selector labels: name, instance and component only, because Deployment
selectors are immutable and must not change on upgrade.
Takes (dict "root" $ "component" "triton").
*/}}
{{- define "triton-qa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton-qa.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of every object. Takes (dict "root" $ "component" "triton").
*/}}
{{- define "triton-qa.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "triton-qa.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ include "triton-qa.name" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of a component's ServiceAccount. Takes (dict "root" $ "component" "triton"
"serviceAccount" <serviceAccount values>).
*/}}
{{- define "triton-qa.serviceAccountName" -}}
{{- if .serviceAccount.create }}
{{- default (include "triton-qa.componentName" .) .serviceAccount.name }}
{{- else }}
{{- default "default" .serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference "repository:tag". Takes (dict "image" <image values>
"defaultTag" <tag>); an empty image tag falls back to defaultTag.
*/}}
{{- define "triton-qa.image" -}}
{{- printf "%s:%s" .image.repository (default .defaultTag .image.tag) }}
{{- end }}

{{/*
Pod securityContext: non-root with the seccomp RuntimeDefault profile.
Takes a component's securityContext values.
*/}}
{{- define "triton-qa.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
# Skips the recursive ownership change of large model volumes when the root already matches.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Container securityContext: read-only root filesystem, no privilege
escalation, every capability dropped.
*/}}
{{- define "triton-qa.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
An HTTP GET probe. Takes (dict "probe" <probe values> "port" <port name>).
*/}}
{{- define "triton-qa.httpProbe" -}}
httpGet:
  path: {{ .probe.path }}
  port: {{ .port }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
successThreshold: {{ .probe.successThreshold }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/*
Probes of one container. Takes (dict "probes" <startup/readiness/liveness
values> "port" <port name>).
*/}}
{{- define "triton-qa.probes" -}}
{{- if .probes.startup.enabled }}
startupProbe:
  {{- include "triton-qa.httpProbe" (dict "probe" .probes.startup "port" .port) | nindent 2 }}
{{- end }}
{{- if .probes.readiness.enabled }}
readinessProbe:
  {{- include "triton-qa.httpProbe" (dict "probe" .probes.readiness "port" .port) | nindent 2 }}
{{- end }}
{{- if .probes.liveness.enabled }}
livenessProbe:
  {{- include "triton-qa.httpProbe" (dict "probe" .probes.liveness "port" .port) | nindent 2 }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep, plus the time the process
may take to drain after SIGTERM, plus a margin, so the kubelet never sends
SIGKILL while requests drain. Takes (dict "shutdown" <shutdown values>
"drainSeconds" <number>).
*/}}
{{- define "triton-qa.terminationGracePeriodSeconds" -}}
{{- add .shutdown.preStopSleepSeconds (ceil .drainSeconds | int) .shutdown.gracePeriodMarginSeconds }}
{{- end }}

{{/*
Name of the Secret with the gateway's bearer tokens.
*/}}
{{- define "triton-qa.gateway.tokenSecretName" -}}
{{- if .Values.gateway.auth.existingSecret }}
{{- .Values.gateway.auth.existingSecret }}
{{- else }}
{{- printf "%s-tokens" (include "triton-qa.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Key of the token file inside the token Secret.
*/}}
{{- define "triton-qa.gateway.tokenSecretKey" -}}
{{- if .Values.gateway.auth.existingSecret }}
{{- .Values.gateway.auth.existingSecretKey }}
{{- else }}
{{- print "tokens" }}
{{- end }}
{{- end }}

{{/*
The --model-repository argument of tritonserver.
*/}}
{{- define "triton-qa.triton.modelRepository" -}}
{{- $repository := .Values.triton.modelRepository }}
{{- if eq $repository.source "image" }}
{{- $repository.image.path }}
{{- else if eq $repository.source "pvc" }}
{{- $repository.pvc.mountPath }}
{{- else if eq $repository.source "objectStorage" }}
{{- $repository.objectStorage.url }}
{{- else }}
{{- fail (printf "triton.modelRepository.source %q is invalid: use image, pvc or objectStorage" $repository.source) }}
{{- end }}
{{- end }}

{{/*
Check an autoscaling block. Takes (dict "name" "triton.autoscaling"
"autoscaling" <values>).
*/}}
{{- define "triton-qa.validateAutoscaling" -}}
{{- if lt (int .autoscaling.maxReplicas) (int .autoscaling.minReplicas) }}
{{- fail (printf "%s.maxReplicas (%d) is less than %s.minReplicas (%d): raise maxReplicas" .name (int .autoscaling.maxReplicas) .name (int .autoscaling.minReplicas)) }}
{{- end }}
{{- end }}
