{{/* Names and labels, in the shape `helm create` uses so tooling recognises them. */}}
{{- define "cm-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cm-api.fullname" -}}
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

{{- define "cm-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cm-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cm-api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cm-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: scalable-shop
{{- end }}

{{/*
Labels of helm test pods: deliberately not the selector labels, or the Deployment's ReplicaSet
would adopt the test pod and the Service would send it traffic.
*/}}
{{- define "cm-api.testLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "cm-api.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: helm-test
{{- end }}

{{- define "cm-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cm-api.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cm-api.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the Kafka credentials: the operator's own, or the one this chart makes. */}}
{{- define "cm-api.secretName" -}}
{{- default (include "cm-api.fullname" .) .Values.credentials.existingSecret }}
{{- end }}

{{/*
Refuse values that would deploy something broken, at render time, with the reason.
*/}}
{{- define "cm-api.validate" -}}
{{- if and (eq .Values.auth.mode "jwt") (or (not .Values.auth.issuer) (not .Values.auth.audience) (not .Values.auth.secretName)) }}
{{- fail "auth.mode jwt needs auth.issuer, auth.audience and auth.secretName (the Secret holding cm-api-service-token)" }}
{{- end }}
{{- if not .Values.kafka.brokers }}
{{- fail "kafka.brokers is required: the Kafka bootstrap servers, host:port[,host:port...]" }}
{{- end }}
{{- if and (not .Values.credentials.existingSecret) (not .Values.credentials.mongodbUri) }}
{{- fail "MongoDB credentials: set credentials.existingSecret (a Secret with the connection string), or credentials.mongodbUri for the chart to put in a Secret" }}
{{- end }}
{{- if and (not .Values.credentials.existingSecret) .Values.credentials.mongodbUri (not (regexMatch "^mongodb(\\+srv)?://" .Values.credentials.mongodbUri)) }}
{{- fail "credentials.mongodbUri must start with mongodb:// or mongodb+srv://" }}
{{- end }}
{{- if and .Values.kafka.sasl.enabled (not .Values.credentials.existingSecret) (or (not .Values.credentials.kafkaUsername) (not .Values.credentials.kafkaPassword)) }}
{{- fail "kafka.sasl.enabled needs credentials.existingSecret, or credentials.kafkaUsername and credentials.kafkaPassword for the chart to put in a Secret" }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if gt (int .Values.autoscaling.maxReplicas) (int .Values.kafka.topicPartitions) }}
{{- fail (printf "autoscaling.maxReplicas (%d) exceeds kafka.topicPartitions (%d): each partition is read by one member of the group at a time, so replicas past the partition count would sit idle" (int .Values.autoscaling.maxReplicas) (int .Values.kafka.topicPartitions)) }}
{{- end }}
{{- if gt (int .Values.autoscaling.fallbackReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.fallbackReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Authentication (docs/SECURITY.md): the environment. The keys themselves are files (below).
*/}}
{{- define "cm-api.authEnv" -}}
- name: AUTH_MODE
  value: {{ .Values.auth.mode | quote }}
{{- if eq .Values.auth.mode "jwt" }}
- name: AUTH_ISSUER
  value: {{ .Values.auth.issuer | quote }}
- name: AUTH_AUDIENCE
  value: {{ .Values.auth.audience | quote }}
- name: AUTH_CLOCK_LEEWAY_S
  value: {{ .Values.auth.clockLeewaySeconds | quote }}
{{- if .Values.auth.jwksConfigMap.name }}
- name: AUTH_JWKS_FILE
  value: /etc/scalable-shop/jwks/{{ .Values.auth.jwksConfigMap.key }}
- name: AUTH_JWKS_RELOAD_S
  value: {{ .Values.auth.jwksReloadSeconds | quote }}
{{- end }}
{{- end }}
{{- if true }}
- name: SECRETS_DIR
  value: /etc/scalable-shop/secrets
{{- end }}
{{- end }}

{{/*
Every credential is a file, never an environment variable (readable in /proc, crash dumps and many
tools' describe): the credentials Secret's keys under the names the service reads
(docs/CONTRACT.md) and the auth Secret, projected into one directory, SECRETS_DIR. The key set is a
ConfigMap mounted as a directory (not subPath), so Kubernetes updates it in place and the service
reads it again.
*/}}
{{- define "cm-api.volumeMounts" -}}
{{- if true }}
- name: secrets
  mountPath: /etc/scalable-shop/secrets
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/scalable-shop/kafka-ca
  readOnly: true
{{- end }}
{{- if and (eq .Values.auth.mode "jwt") .Values.auth.jwksConfigMap.name }}
- name: auth-jwks
  mountPath: /etc/scalable-shop/jwks
  readOnly: true
{{- end }}
{{- end }}

{{- define "cm-api.volumes" -}}
{{- if true }}
- name: secrets
  projected:
    sources:
      {{- if true }}
      - secret:
          name: {{ include "cm-api.secretName" . }}
          items:
            - key: {{ .Values.credentials.keys.mongodbUri }}
              path: mongodb-uri
            {{- if .Values.kafka.sasl.enabled }}
            - key: {{ .Values.credentials.keys.kafkaUsername }}
              path: kafka-username
            - key: {{ .Values.credentials.keys.kafkaPassword }}
              path: kafka-password
            {{- end }}
      {{- end }}
      {{- if eq .Values.auth.mode "jwt" }}
      - secret:
          name: {{ .Values.auth.secretName }}
      {{- end }}
{{- end }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
{{- end }}
{{- if and (eq .Values.auth.mode "jwt") .Values.auth.jwksConfigMap.name }}
- name: auth-jwks
  configMap:
    name: {{ .Values.auth.jwksConfigMap.name }}
{{- end }}
{{- end }}

{{/*
Traces (docs/OBSERVABILITY.md), by the standard OpenTelemetry variables only; nothing without an
endpoint. The pod's name, namespace and node become resource attributes through the downward API.
*/}}
{{- define "cm-api.tracingEnv" -}}
{{- if .Values.tracing.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.tracing.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
- name: OTEL_SERVICE_NAME
  value: cm-api
- name: OTEL_TRACES_SAMPLER
  value: {{ .Values.tracing.sampler | quote }}
{{- if hasSuffix "traceidratio" .Values.tracing.sampler }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.tracing.ratio | quote }}
{{- end }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- $attributes := list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE_NAME)" "k8s.node.name=$(K8S_NODE_NAME)" (printf "service.version=%s" .Chart.AppVersion) }}
{{- range $key, $value := .Values.tracing.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%s" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- end }}
{{- end }}
