#!/usr/bin/env bash
# Creates the kind cluster `sagashop`, installs Istio, builds and loads the image, deploys the shop with its mesh
# configuration and waits until every part is rolled out. Needs docker, kind, kubectl and istioctl (README:
# "Kubernetes (kind) and Istio canary"). Idempotent: a second run reuses the cluster and re-applies everything.
#   OVERLAY=kind-canary deploy/kind/up.sh      # the same with payment-v2 beside payment-v1
set -euo pipefail

cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-sagashop}
IMAGE=${IMAGE:-sagashop:0.1.0}
OVERLAY=${OVERLAY:-kind}
ISTIO_VERSION=1.24.2
NAMESPACE=sagashop
CONTEXT="kind-${CLUSTER}"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "up.sh: $1 is not installed ($2)" >&2; exit 1; }
}
need docker "https://docs.docker.com/get-docker/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need istioctl "curl -L https://istio.io/downloadIstio | ISTIO_VERSION=${ISTIO_VERSION} sh -"
if ! istioctl version --remote=false 2>/dev/null | grep -q "${ISTIO_VERSION}"; then
  echo "up.sh: istioctl ${ISTIO_VERSION} is required, found: $(istioctl version --remote=false 2>&1 | head -1)" >&2
  exit 1
fi

if kind get clusters | grep -qx "${CLUSTER}"; then
  echo "== cluster ${CLUSTER} exists"
else
  echo "== creating cluster ${CLUSTER}"
  kind create cluster --name "${CLUSTER}" --config deploy/kind/cluster.yaml --wait 120s
fi
kubectl config use-context "${CONTEXT}" >/dev/null

echo "== building ${IMAGE} and loading it into the cluster"
docker build -t "${IMAGE}" .
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

echo "== installing Istio ${ISTIO_VERSION} (default profile: istiod + the ingress gateway)"
istioctl install --context "${CONTEXT}" --set profile=default -y
kubectl --context "${CONTEXT}" -n istio-system rollout status deployment/istiod --timeout=300s
kubectl --context "${CONTEXT}" -n istio-system rollout status deployment/istio-ingressgateway --timeout=300s

echo "== deploying deploy/k8s/overlays/${OVERLAY} into namespace ${NAMESPACE}"
kubectl --context "${CONTEXT}" create namespace "${NAMESPACE}" --dry-run=client -o yaml \
  | kubectl --context "${CONTEXT}" apply -f -
kubectl --context "${CONTEXT}" label namespace "${NAMESPACE}" istio-injection=enabled --overwrite
kubectl --context "${CONTEXT}" apply -k "deploy/k8s/overlays/${OVERLAY}"

echo "== applying the mesh configuration (istio/; istio/faults/ holds examples, applied only on purpose)"
kubectl --context "${CONTEXT}" apply -f istio/

echo "== waiting for the rollouts (the shop, PostgreSQL, Redis, the OpenTelemetry Collector and Jaeger)"
kubectl --context "${CONTEXT}" -n "${NAMESPACE}" rollout status statefulset/postgres --timeout=300s
for deployment in $(kubectl --context "${CONTEXT}" -n "${NAMESPACE}" get deployments -o name); do
  kubectl --context "${CONTEXT}" -n "${NAMESPACE}" rollout status "${deployment}" --timeout=300s
done

cat <<MESSAGE

sagashop is running in kind cluster ${CLUSTER} (namespace ${NAMESPACE}, overlay ${OVERLAY}).
Reach the gateway through the Istio ingress gateway:
  kubectl --context ${CONTEXT} -n istio-system port-forward svc/istio-ingressgateway 8080:80
  curl -s localhost:8080/v1/products
The admin is admin@sagashop.local with the dev-only password of deploy/k8s/overlays/kind (dev-only-admin-password).
Traces: kubectl --context ${CONTEXT} -n ${NAMESPACE} port-forward svc/jaeger 16686, then http://localhost:16686
Canary weights: .venv/bin/sagashop canary status --context ${CONTEXT}
Remove everything: make kind-down
MESSAGE
