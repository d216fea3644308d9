{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "llm-mcp-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart unless the release name already contains the chart name.
*/}}
{{- define "llm-mcp-hub.fullname" -}}
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

{{/*
Name of one component's objects: the full name shortened so that name plus "-suffix" fits 63 characters.
Usage: {{ include "llm-mcp-hub.componentName" (list . "gateway") }}
*/}}
{{- define "llm-mcp-hub.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $prefix := include "llm-mcp-hub.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix $suffix }}
{{- end }}

{{/*
Chart label value.
*/}}
{{- define "llm-mcp-hub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "llm-mcp-hub.labels" -}}
helm.sh/chart: {{ include "llm-mcp-hub.chart" . }}
app.kubernetes.io/name: {{ include "llm-mcp-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-mcp-hub
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one component: the common labels plus app.kubernetes.io/component.
Usage: {{ include "llm-mcp-hub.componentLabels" (list . "gateway") }}
*/}}
{{- define "llm-mcp-hub.componentLabels" -}}
{{ include "llm-mcp-hub.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Selector labels of one component; the component label keeps selectors from overlapping.
Usage: {{ include "llm-mcp-hub.selectorLabels" (list . "gateway") }}
*/}}
{{- define "llm-mcp-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-mcp-hub.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Image reference: optional global registry, repository, then digest or tag (default: appVersion).
Usage: {{ include "llm-mcp-hub.image" (list . .Values.gateway.image) }}
*/}}
{{- define "llm-mcp-hub.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- $repo := $image.repository }}
{{- $registry := $root.Values.global.imageRegistry }}
{{- if $registry }}
{{- $first := first (splitList "/" $repo) }}
{{- if not (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo }}
{{- end }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repo $image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Pull secrets: the component's own list, else the global one.
Usage: {{ include "llm-mcp-hub.imagePullSecrets" (list . .Values.gateway) }}
*/}}
{{- define "llm-mcp-hub.imagePullSecrets" -}}
{{- $root := index . 0 }}
{{- $secrets := default $root.Values.global.imagePullSecrets (index . 1).imagePullSecrets }}
{{- with $secrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Operator object name.
*/}}
{{- define "llm-mcp-hub-operator.fullname" -}}
{{- include "llm-mcp-hub.componentName" (list . "operator") }}
{{- end }}

{{/*
Operator ServiceAccount: name if set, else the generated name when created, else "default".
*/}}
{{- define "llm-mcp-hub-operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "llm-mcp-hub-operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.create=false needs operator.serviceAccount.name: the existing ServiceAccount the operator runs as and its rights are bound to (never the namespace's \"default\")" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Namespaces the operator watches, one per line: the configured list, else the release namespace.
*/}}
{{- define "llm-mcp-hub-operator.watchNamespaces" -}}
{{- $list := .Values.operator.watchNamespaces | default (list .Release.Namespace) }}
{{- range $list }}
{{ . }}
{{- end }}
{{- end }}

{{/*
Gateway object name (also the Deployment every LLMProvider rolls).
*/}}
{{- define "llm-mcp-hub-gateway.fullname" -}}
{{- include "llm-mcp-hub.componentName" (list . "gateway") }}
{{- end }}

{{/*
Gateway ServiceAccount: name if set, else the generated name when created, else "default".
*/}}
{{- define "llm-mcp-hub-gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "llm-mcp-hub-gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The first providers entry of one kind (claude or gemini), as YAML ("{}" when there is none).
Usage: {{ include "llm-mcp-hub.firstProvider" (list . "claude") | fromYaml }}
*/}}
{{- define "llm-mcp-hub.firstProvider" -}}
{{- $found := dict }}
{{- range (index . 0).Values.providers }}
{{- if and (eq .provider (index $ 1)) (not $found.name) }}
{{- $found = . }}
{{- end }}
{{- end }}
{{- toYaml $found }}
{{- end }}

{{/*
Secret the gateway reads for one provider kind: gateway.<kind>.secretName, else the first
matching provider's target Secret, else "<kind>-credentials".
Usage: {{ include "llm-mcp-hub-gateway.credentialSecret" (list . "claude") }}
*/}}
{{- define "llm-mcp-hub-gateway.credentialSecret" -}}
{{- $root := index . 0 }}
{{- $kind := index . 1 }}
{{- $p := include "llm-mcp-hub.firstProvider" (list $root $kind) | fromYaml }}
{{- $fromProvider := "" }}
{{- if $p.name }}
{{- $fromProvider = default (printf "%s-credentials" $p.name) $p.targetSecretName }}
{{- end }}
{{- (index $root.Values.gateway $kind).secretName | default $fromProvider | default (printf "%s-credentials" $kind) }}
{{- end }}

{{/*
Default model the gateway serves for one provider kind: gateway.<kind>.model, else the first matching provider's model.
Usage: {{ include "llm-mcp-hub-gateway.model" (list . "gemini") }}
*/}}
{{- define "llm-mcp-hub-gateway.model" -}}
{{- $root := index . 0 }}
{{- $kind := index . 1 }}
{{- $p := include "llm-mcp-hub.firstProvider" (list $root $kind) | fromYaml }}
{{- (index $root.Values.gateway $kind).model | default $p.model | default "" }}
{{- end }}

{{/*
Host names MCP accepts: the Service's in-cluster names plus gateway.mcp.extraAllowedHosts, comma-separated.
*/}}
{{- define "llm-mcp-hub-gateway.mcpAllowedHosts" -}}
{{- $svc := include "llm-mcp-hub-gateway.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- join "," (concat $hosts .Values.gateway.mcp.extraAllowedHosts) }}
{{- end }}

{{/*
The RFC 9728 resource MCP clients get tokens for: gateway.mcp.resourceUrl or the Service URL.
*/}}
{{- define "llm-mcp-hub-gateway.mcpResourceUrl" -}}
{{- $gw := .Values.gateway }}
{{- if $gw.mcp.resourceUrl }}
{{- $gw.mcp.resourceUrl }}
{{- else }}
{{- printf "http://%s.%s.svc.%s:%v/mcp" (include "llm-mcp-hub-gateway.fullname" .) .Release.Namespace .Values.clusterDomain $gw.service.port }}
{{- end }}
{{- end }}

{{/*
Redis object name.
*/}}
{{- define "llm-mcp-hub-redis.fullname" -}}
{{- include "llm-mcp-hub.componentName" (list . "redis") }}
{{- end }}

{{/*
Secret holding the built-in Redis password: the existing one, else the chart-made one.
*/}}
{{- define "llm-mcp-hub-redis.secretName" -}}
{{- default (include "llm-mcp-hub-redis.fullname" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{/*
Refuse value combinations the schema cannot express with a clear message.
*/}}
{{- define "llm-mcp-hub.validate" -}}
{{- if and .Values.redis.enabled (or .Values.redis.external.url .Values.redis.external.existingSecret) }}
{{- fail "redis: set either redis.enabled=true (built-in Redis) or redis.external.url/existingSecret (external Redis), never both" }}
{{- end }}
{{- if and .Values.redis.enabled .Values.redis.auth.enabled (not (or .Values.redis.auth.password .Values.redis.auth.existingSecret)) }}
{{- fail "redis.auth.enabled=true needs redis.auth.password or redis.auth.existingSecret" }}
{{- end }}
{{- if and .Values.operator.azure.tokenProjection.enabled (not .Values.operator.azure.clientId) }}
{{- fail "operator.azure.tokenProjection.enabled=true needs operator.azure.clientId" }}
{{- end }}
{{- if and .Values.operator.azure.tokenProjection.enabled (not .Values.operator.azure.tenantId) }}
{{- fail "operator.azure.tokenProjection.enabled=true needs operator.azure.tenantId (there is no webhook to inject it)" }}
{{- end }}
{{- if and (not .Values.operator.azure.verifyChallengeResource) (not .Values.operator.keyVault.allowedVaults) }}
{{- fail "operator.azure.verifyChallengeResource=false needs operator.keyVault.allowedVaults (name the stand-in vault: without the check any host could answer the challenge for another resource)" }}
{{- end }}
{{- $election := .Values.operator.leaderElection }}
{{- if and (not $election.enabled) (gt (int .Values.operator.replicaCount) 1) }}
{{- fail "operator.replicaCount > 1 needs operator.leaderElection.enabled=true (otherwise every replica reconciles)" }}
{{- end }}
{{- if not (lt (int $election.renewDeadlineSeconds) (int $election.leaseDurationSeconds)) }}
{{- fail "operator.leaderElection.renewDeadlineSeconds must be less than leaseDurationSeconds (the holder stops before its Lease can be taken)" }}
{{- end }}
{{- if not (gt (mul (int $election.renewDeadlineSeconds) 10) (mul (int $election.retryPeriodSeconds) 12)) }}
{{- fail "operator.leaderElection.renewDeadlineSeconds must exceed 1.2 x retryPeriodSeconds (as client-go requires: a renewal try fits before the deadline)" }}
{{- end }}
{{- $op := .Values.operator }}
{{- if eq (int $op.metrics.port) (int $op.health.port) }}
{{- fail (printf "operator.metrics.port and operator.health.port are both %v: the second server cannot bind and the operator crash-loops; give them different ports" $op.metrics.port) }}
{{- end }}
{{- if not $op.serviceAccount.create }}
{{- $_ := include "llm-mcp-hub-operator.serviceAccountName" . }}
{{- end }}
{{- if and .Values.providers (not $op.watchAllNamespaces) $op.watchNamespaces (not (has .Release.Namespace $op.watchNamespaces)) }}
{{- fail (printf "providers are created in the release namespace %s, which operator.watchNamespaces does not include, so they would never sync: add %s to operator.watchNamespaces (or set operator.watchAllNamespaces=true)" .Release.Namespace .Release.Namespace) }}
{{- end }}
{{- if and $op.keyVault.tokenRequestServiceAccounts (eq .Release.Namespace "kube-system") }}
{{- fail "operator.keyVault.tokenRequestServiceAccounts: never in kube-system (a token of a system ServiceAccount is a path to its rights); install the chart in a namespace of its own" }}
{{- end }}
{{- include "llm-mcp-hub.validateCrdOwner" . }}
{{- $seen := dict }}
{{- range .Values.providers }}
{{- if hasKey $seen .name }}
{{- fail (printf "providers: the name %q appears twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- end }}

{{/*
Headless Service of the gateway's admin port: its DNS name resolves to every ready gateway pod,
so the operator can read each replica's /health/tokens (account refusals are kept per replica)
and Prometheus scrapes each one's /metrics.
*/}}
{{- define "llm-mcp-hub-gateway.replicasName" -}}
{{- printf "%s-replicas" (include "llm-mcp-hub-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The URL the operator reads account refusals from: the headless Service at the admin container
port (a headless Service has no proxy, so its port is the pods' own).
*/}}
{{- define "llm-mcp-hub-gateway.replicasUrl" -}}
{{- printf "http://%s.%s.svc.%s:9090" (include "llm-mcp-hub-gateway.replicasName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/*
The LLMProvider CRD in the live cluster, as one word: "" (no cluster: `helm template`, or
--dry-run), "missing", "ours" (this release's Helm metadata) or "other:<release>/<namespace>"
(another release's, or none: applied without Helm).
*/}}
{{- define "llm-mcp-hub.crdState" -}}
{{- include "llm-mcp-hub.crdStateOf" (list . "llmproviders.llm-mcp-hub.io") }}
{{- end }}

{{/*
The same word for any CRD of the chart. Usage: include "llm-mcp-hub.crdStateOf" (list . "<name>")
*/}}
{{- define "llm-mcp-hub.crdStateOf" -}}
{{- $ := index . 0 }}
{{- if lookup "v1" "Namespace" "" "kube-system" }}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" (index . 1) }}
{{- if not $crd }}
{{- print "missing" }}
{{- else }}
{{- $a := default dict $crd.metadata.annotations }}
{{- $owner := printf "%s/%s" (get $a "meta.helm.sh/release-name") (get $a "meta.helm.sh/release-namespace") }}
{{- if eq $owner (printf "%s/%s" $.Release.Name $.Release.Namespace) }}
{{- print "ours" }}
{{- else }}
{{- printf "other:%s" $owner }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refuse up front what Helm would fail on half-way: a CRD of another owner (a release uninstalled
under another name keeps it), and dropping a CRD this release owns (a rollback across that can
never work: Helm does not adopt on rollback). Each message carries the command that fixes it.
*/}}
{{- define "llm-mcp-hub.validateCrdOwner" -}}
{{- $state := include "llm-mcp-hub.crdState" . }}
{{- range $kind := list "LLMProvider" "LLMGateway" }}
{{- $name := printf "%ss.llm-mcp-hub.io" (lower $kind) }}
{{- $state := include "llm-mcp-hub.crdStateOf" (list $ $name) }}
{{- $crd := printf "crd %s" $name }}
{{- if and $.Values.crds.install (hasPrefix "other:" $state) }}
{{- $owner := trimPrefix "other:" $state }}
{{- fail (printf "crds.install=true, but the %s CRD in the cluster belongs to %s (release/namespace; \"/\": applied without Helm), so Helm would refuse it. If that release is still installed, set crds.install=false. Otherwise adopt the CRD (its %ss stay): kubectl label %s app.kubernetes.io/managed-by=Helm --overwrite && kubectl annotate %s meta.helm.sh/release-name=%s meta.helm.sh/release-namespace=%s --overwrite" $kind $owner $kind $crd $crd $.Release.Name $.Release.Namespace) }}
{{- end }}
{{- if and (not $.Values.crds.install) $.Release.IsUpgrade (eq $state "ours") }}
{{- fail (printf "crds.install=false, but this release owns the %s CRD: Helm would keep it yet drop it from the release, and a helm rollback to a revision with it then fails. Keep crds.install=true; to hand the CRD to another owner, release it first: kubectl annotate %s meta.helm.sh/release-name- meta.helm.sh/release-namespace- && kubectl label %s app.kubernetes.io/managed-by-" $kind $crd $crd) }}
{{- end }}
{{- end }}
{{- if and (not .Values.crds.install) .Values.providers (eq $state "missing") }}
{{- fail "providers need the LLMProvider CRD, which is not in the cluster and crds.install=false: apply it first (kubectl apply --server-side -f crds/) or set crds.install=true" }}
{{- end }}
{{- end }}
