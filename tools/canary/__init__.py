"""`sagashop canary`: the canary weight of each part in istio/ and in a cluster (files.py, kube.py, status.py), mesh
faults that keep the canary's routes (faults.py), and progressive delivery judged on the sagas' outcomes in
Prometheus (run.py, analysis.py, load.py, report.py); the command is cli.py."""
