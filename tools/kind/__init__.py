"""The kind cluster's helpers for deploy/kind/up.sh: what it applies and asks of the node (stack.py), the smoke
checkout through the ingress at its end (smoke.py)."""
