#!/usr/bin/env bash
# Creates the kind cluster `sagashop`, installs Istio (istio.yaml), builds the working tree's image and loads it,
# deploys an overlay with monitoring (stack.py), waits for the rollouts and places one order through the ingress
# gateway at http://127.0.0.1:8080. Needs docker, kind, kubectl, istioctl and `make setup` (docs/kubernetes.md).
# Idempotent: a re-run reuses the cluster, rolls out the new build and prunes what the overlay no longer has.
#   deploy/kind/up.sh                          # overlay kind
#   OVERLAY=kind-canary deploy/kind/up.sh      # the canary overlay (payment-v2 beside payment-v1); back with OVERLAY=kind
#   deploy/kind/up.sh --check                  # the tools, their versions and Docker's CPUs and memory only
#   FORCE=1 deploy/kind/up.sh                  # even when the overlay's requests do not fit Docker's resources
set -euo pipefail

cd "$(dirname "$0")/../.."
# shellcheck source=deploy/kind/lib.sh
source deploy/kind/lib.sh
CLUSTER=${CLUSTER:-sagashop}
OVERLAY=${OVERLAY:-kind}
PYTHON=${PYTHON:-.venv/bin/python}
CONTEXT="kind-${CLUSTER}"
NAMESPACE=sagashop
URL=http://127.0.0.1:8080
PART_OF=app.kubernetes.io/part-of=sagashop
# What a switch of overlays may delete: the kinds of the stack, less Namespaces and PersistentVolumeClaims (the
# data) and Jobs (a canary run started by hand).
PRUNABLE=(core/v1/ConfigMap core/v1/Secret core/v1/Service core/v1/ServiceAccount apps/v1/Deployment
  apps/v1/StatefulSet policy/v1/PodDisruptionBudget autoscaling/v2/HorizontalPodAutoscaler
  networking.k8s.io/v1/NetworkPolicy rbac.authorization.k8s.io/v1/Role rbac.authorization.k8s.io/v1/RoleBinding
  rbac.authorization.k8s.io/v1/ClusterRole rbac.authorization.k8s.io/v1/ClusterRoleBinding
  networking.istio.io/v1/Gateway networking.istio.io/v1/VirtualService networking.istio.io/v1/DestinationRule
  security.istio.io/v1/PeerAuthentication security.istio.io/v1/AuthorizationPolicy)

[ -x "${PYTHON}" ] || { fail "${PYTHON} is missing: run \`make setup\` first (or \`make kind-up\`)"; exit 1; }
check_tools || exit 1
preflight "${PYTHON}" "${OVERLAY}" || exit 1
[ "${1:-}" = --check ] && exit 0

WORK=$(mktemp -d)
trap 'rm -rf "${WORK}"' EXIT

if kind get clusters | grep -qx "${CLUSTER}"; then
  echo "== cluster ${CLUSTER} exists"
else
  echo "== creating cluster ${CLUSTER}"
  kind create cluster --name "${CLUSTER}" --config deploy/kind/cluster.yaml --wait 180s
fi
kubectl config use-context "${CONTEXT}" >/dev/null

TAG=$(image_tag)
echo "== building sagashop:${TAG} and loading it into the cluster"
docker build -t "sagashop:${TAG}" .
# an archive, not `kind load docker-image`, which fails under Docker's containerd image store
docker save "sagashop:${TAG}" -o "${WORK}/image.tar"
kind load image-archive "${WORK}/image.tar" --name "${CLUSTER}"

echo "== installing Istio (deploy/kind/istio.yaml: istiod and the ingress gateway on 127.0.0.1:8080)"
istioctl install --context "${CONTEXT}" -f deploy/kind/istio.yaml -y
kubectl --context "${CONTEXT}" -n istio-system rollout status deployment/istiod --timeout=300s
kubectl --context "${CONTEXT}" -n istio-system rollout status deployment/istio-ingressgateway --timeout=300s

echo "== deploying overlay ${OVERLAY} with monitoring, image sagashop:${TAG}"
"${PYTHON}" -m tools.kind.stack render "${OVERLAY}" --tag "${TAG}" >"${WORK}/stack.yaml"
kubectl --context "${CONTEXT}" apply --prune -l "${PART_OF}" \
  "${PRUNABLE[@]/#/--prune-allowlist=}" -f "${WORK}/stack.yaml"

echo "== waiting for the rollouts"
kubectl --context "${CONTEXT}" -n kube-system rollout status deployment/metrics-server --timeout=300s
kubectl --context "${CONTEXT}" -n monitoring rollout status deployment/prometheus --timeout=300s
kubectl --context "${CONTEXT}" -n "${NAMESPACE}" rollout status statefulset/postgres --timeout=300s
for deployment in $(kubectl --context "${CONTEXT}" -n "${NAMESPACE}" get deployments -o name); do
  kubectl --context "${CONTEXT}" -n "${NAMESPACE}" rollout status "${deployment}" --timeout=300s
done

echo "== one checkout through the ingress gateway"
"${PYTHON}" -m tools.kind.smoke "${WORK}/stack.yaml" --url "${URL}"

cat <<MESSAGE

sagashop ${TAG} runs in kind cluster ${CLUSTER} (namespace ${NAMESPACE}, overlay ${OVERLAY}).
  The shop:    ${URL} (the API; the console at ${URL}/console), e.g. .venv/bin/sagashop demo --url ${URL}
  The admin:   admin@sagashop.local, the dev-only password of deploy/k8s/overlays/kind
  Prometheus:  kubectl --context ${CONTEXT} -n monitoring port-forward svc/prometheus 9090, then http://localhost:9090
  Traces:      kubectl --context ${CONTEXT} -n ${NAMESPACE} port-forward svc/jaeger 16686, then http://localhost:16686
  Canary:      OVERLAY=kind-canary make kind-up, then
               .venv/bin/sagashop canary status --context ${CONTEXT}
               .venv/bin/sagashop canary set payment 10 --apply --context ${CONTEXT}
  Remove:      make kind-down
MESSAGE
