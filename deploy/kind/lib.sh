# shellcheck shell=bash
# What deploy/kind/up.sh checks before it changes anything (the tools and their versions, Docker's CPUs and
# memory) and the image tag it builds, as functions: the tests run them with stand-ins for docker, kind, kubectl
# and istioctl on PATH. Each check prints what is wrong on stderr and returns 1.

# Istio 1.30 (supported: Kubernetes 1.32-1.36) and 1.31, the releases current at the time of writing; the node runs
# Kubernetes 1.35 (cluster.yaml). kind v0.33.0 built that node image. kubectl within one minor of the node.
ISTIO_MIN=1.30
ISTIO_MAX=1.31
ISTIO_SUGGESTED=1.30.4
KIND_MIN=0.33.0
KUBECTL_MIN=1.34.0

fail() {
  echo "up.sh: $*" >&2
  return 1
}

# The first version number (1.30.2, v0.33.0 -> 0.33.0) in what the command prints, or nothing.
version_of() {
  "$@" 2>/dev/null | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1 || true
}

# Whether version $1 >= version $2.
at_least() {
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$2" ]
}

need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed ($2)"
}

check_istioctl() {
  local found minor install="curl -L https://istio.io/downloadIstio | ISTIO_VERSION=${ISTIO_SUGGESTED} sh -"
  need istioctl "${install}, then put istio-${ISTIO_SUGGESTED}/bin on PATH" || return 1
  found=$(version_of istioctl version --remote=false)
  [ -n "${found}" ] || { fail "istioctl does not tell its version (istioctl version --remote=false)"; return 1; }
  minor=$(echo "${found}" | cut -d. -f1,2)
  if ! at_least "${minor}" "${ISTIO_MIN}" || ! at_least "${ISTIO_MAX}" "${minor}"; then
    fail "istioctl ${found} is not supported here: Istio ${ISTIO_MIN} to ${ISTIO_MAX} is (${install})"
    return 1
  fi
}

check_kind() {
  local found
  need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" || return 1
  found=$(version_of kind version)
  at_least "${found:-0}" "${KIND_MIN}" \
    || fail "kind ${found:-of unknown version} is too old: v${KIND_MIN} or newer built the node image of cluster.yaml"
}

check_kubectl() {
  local found
  need kubectl "https://kubernetes.io/docs/tasks/tools/" || return 1
  found=$(version_of kubectl version --client)
  at_least "${found:-0}" "${KUBECTL_MIN}" \
    || fail "kubectl ${found:-of unknown version} is too old for the Kubernetes 1.35 node: v${KUBECTL_MIN} or newer"
}

# Docker's CPUs and memory in bytes ("4 8328646656"), which the kind node shares.
docker_resources() {
  need docker "https://docs.docker.com/get-docker/" || return 1
  docker info --format '{{.NCPU}} {{.MemTotal}}' 2>/dev/null || fail "docker does not answer: is Docker running?"
}

check_tools() {
  local ok=0
  need docker "https://docs.docker.com/get-docker/" || ok=1
  check_kind || ok=1
  check_kubectl || ok=1
  check_istioctl || ok=1
  return "${ok}"
}

# Whether the overlay's requests (tools/kind/stack.py) fit Docker's CPUs and memory; FORCE=1 goes on anyway.
preflight() {
  local python=$1 overlay=$2 resources
  resources=$(docker_resources) || return 1
  if ! "${python}" -m tools.kind.stack requests "${overlay}" --docker "${resources}"; then
    [ "${FORCE:-0}" = 1 ] || return 1
    echo "up.sh: FORCE=1: going on, some pods may stay Pending" >&2
  fi
}

# The image tag of the working tree: its commit, plus -dirty-<digest of the changes> when it has any, so that a
# new edit is a new tag and a re-run rolls the pods out.
image_tag() {
  local commit changes
  commit=$(git rev-parse --short=12 HEAD) || { fail "not a git checkout: cannot name the image"; return 1; }
  changes=$(git status --porcelain --untracked-files=all)
  if [ -z "${changes}" ]; then
    echo "${commit}"
  else
    echo "${commit}-dirty-$({ git diff HEAD --binary; git ls-files -z --others --exclude-standard \
      | xargs -0r sha256sum; } | sha256sum | cut -c1-12)"
  fi
}
