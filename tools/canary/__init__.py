"""`sagashop canary`: the Istio canary weights of each part (files.py), and progressive delivery judged on the
sagas' outcomes in Prometheus (run.py, analysis.py, load.py, report.py); the command is cli.py."""
