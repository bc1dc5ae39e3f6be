#!/usr/bin/env bash
# Deletes the kind cluster made by up.sh, with everything in it (the images stay in the local docker).
set -euo pipefail

CLUSTER=${CLUSTER:-sagashop}
command -v kind >/dev/null 2>&1 || { echo "down.sh: kind is not installed" >&2; exit 1; }
if kind get clusters | grep -qx "${CLUSTER}"; then
  kind delete cluster --name "${CLUSTER}"
else
  echo "down.sh: no kind cluster named ${CLUSTER}"
fi
