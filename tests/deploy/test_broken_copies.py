"""The checks catch what they are for: each test breaks one thing in a copy of deploy/ and istio/."""

import shutil
from pathlib import Path

import pytest

from .manifests import ROOT, kubectl_or_skip
from .suite import all_problems


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    kubectl_or_skip()
    for folder in ("deploy", "istio"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def reported(root: Path, *needles: str) -> list[str]:
    """The problems found in the tree that mention every needle; the test asserts there is one at least."""
    problems = all_problems(root)
    return [p for p in problems if all(n in p for n in needles)]


def test_the_unbroken_copy_has_no_problems(tree: Path) -> None:
    assert all_problems(tree) == []


def test_a_route_to_a_subset_no_destination_rule_declares(tree: Path) -> None:
    edit(tree / "istio/payment.yaml", "destination: {host: payment, subset: v2}\n    retries",
         "destination: {host: payment, subset: canary}\n    retries")
    assert reported(tree, "VirtualService/payment", "subset 'canary'", "in no DestinationRule")


def test_weights_that_do_not_add_up_to_100(tree: Path) -> None:
    edit(tree / "istio/inventory.yaml", "weight: 100", "weight: 90")
    assert reported(tree, "VirtualService/inventory", "weights [90, 0] do not add up to 100")


def test_a_weight_written_as_text(tree: Path) -> None:
    edit(tree / "istio/order.yaml", "weight: 100", 'weight: "100"')
    assert reported(tree, "order.yaml", "weight", "valid integer")


def test_a_field_istio_does_not_know(tree: Path) -> None:
    edit(tree / "istio/shipping.yaml", "retries: {attempts: 0}", "retries: {attempts: 0, perTryTimout: 2s}")
    assert reported(tree, "shipping.yaml", "unknown field", "perTryTimout")


def test_mesh_retries_left_on(tree: Path) -> None:
    edit(tree / "istio/user.yaml", "retries: {attempts: 0}", "retries: {attempts: 2}")
    assert reported(tree, "VirtualService/user", "the app owns retries")


def test_a_header_pin_that_does_not_come_first(tree: Path) -> None:
    edit(tree / "istio/orchestrator.yaml", "x-sagashop-route: {exact: v2}", "x-sagashop-route: {exact: v3}")
    assert reported(tree, "orchestrator.yaml", "the first two routes must pin")


def test_a_subset_whose_labels_select_no_pods(tree: Path) -> None:
    edit(tree / "istio/payment.yaml", "labels: {version: v1}", "labels: {version: v1, track: stable}")
    assert reported(tree, "payment", "subset v1", "selects no pods")


def test_a_service_port_that_no_container_serves(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/payment.yaml", "targetPort: grpc", "targetPort: grcp")
    assert reported(tree, "Service/payment", "targetPort grcp is no container port")


def test_a_probe_on_the_wrong_port(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/shipping.yaml", "readinessProbe:\n          grpc: {port: 50055}",
         "readinessProbe:\n          grpc: {port: 50054}")
    assert reported(tree, "Deployment/shipping-v1", "readinessProbe port 50054 is no container port")


def test_a_host_variable_left_out(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/config.env", "SAGASHOP_PAYMENT_HOST=payment\n", "")
    assert reported(tree, "Deployment/orchestrator-v1", "missing SAGASHOP_PAYMENT_HOST")


def test_a_misspelt_variable(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/config.env", "SAGASHOP_STEP_DEADLINE_SECONDS=", "SAGASHOP_STEP_DEADLINE_SECS=")
    assert reported(tree, "SAGASHOP_STEP_DEADLINE_SECS is no Settings field")


def test_a_port_that_is_no_service_port(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/config.env", "SAGASHOP_SHIPPING_PORT=50055", "SAGASHOP_SHIPPING_PORT=50056")
    assert reported(tree, "shipping at shipping:50056 is no Service port")


def test_an_image_tagged_latest(tree: Path) -> None:
    edit(tree / "deploy/k8s/overlays/production/kustomization.yaml", "newTag: 0.1.0", "newTag: latest")
    assert reported(tree, "production", "ghcr.io/sagashop/sagashop:latest is not pinned")


def test_a_field_kubernetes_does_not_know(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/user.yaml", "revisionHistoryLimit: 3", "revisionHistoryLimit: 3\n  replica: 2")
    assert reported(tree, "Deployment/user-v1", "'replica' was unexpected")


def test_a_removed_api_version(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/order.yaml", "apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n")
    assert reported(tree, "PodDisruptionBudget/order", "no Kubernetes", "schema for policy/v1beta1")


def test_a_principal_that_names_no_service_account(tree: Path) -> None:
    edit(tree / "istio/authorization.yaml", "principals: [cluster.local/ns/sagashop/sa/gateway]",
         "principals: [cluster.local/ns/sagashop/sa/api-gateway]")
    assert reported(tree, "sa/api-gateway is no ServiceAccount")


def test_a_method_path_with_a_typo(tree: Path) -> None:
    edit(tree / "istio/authorization.yaml", "/sagashop.v1.PaymentService/Refund", "/sagashop.v1.PaymentService/Refnd")
    assert reported(tree, "/sagashop.v1.PaymentService/Refnd is no gRPC method")


def test_a_secret_the_kind_overlay_does_not_generate(tree: Path) -> None:
    edit(tree / "deploy/k8s/overlays/kind/kustomization.yaml", "  - db-password=dev-only-db-password\n", "")
    assert reported(tree, "kind", "Secret sagashop-secrets", "db-password not found")


OBSERVABILITY = "deploy/k8s/components/observability"
TRACE_PIPELINE_BREAKS = [
    pytest.param("kustomization.yaml", "otel-collector.sagashop:4318", "otel-colector.sagashop:4318",
                 ("payment-v1", "OTEL_EXPORTER_OTLP_ENDPOINT: otel-colector.sagashop:4318 is no Service port"),
                 id="the parts' OTLP endpoint naming no Service"),
    pytest.param("kustomization.yaml", "otel-collector.sagashop:4318", "otel-collector.sagashop:4317",
                 ("gateway-v1", "sends OTLP over http to otel-collector port grpc-otlp, which speaks grpc"),
                 id="the parts' OTLP endpoint on the collector's gRPC port"),
    pytest.param("kustomization.yaml", "OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_ENDPIONT=",
                 ("OTEL_EXPORTER_OTLP_ENDPIONT is no OpenTelemetry SDK variable",),
                 id="a misspelt OpenTelemetry variable"),
    pytest.param("kustomization.yaml", "  - OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.sagashop:4318\n", "",
                 ("Deployment/orchestrator-v1", "exports no spans", "though a collector runs"),
                 id="the parts not pointed at the collector"),
    pytest.param("otel-collector.yaml", "port: 4318, targetPort: otlp-http, appProtocol: http",
                 "port: 4318, targetPort: otlp-http", ("Service/otel-collector", "port http-otlp needs appProtocol"),
                 id="a Service port whose protocol Istio must guess"),
    pytest.param("jaeger.yaml", "{name: grpc-otlp, port: 4317, targetPort: otlp-grpc, appProtocol: grpc}",
                 "{name: grpc-otlp, port: 4317, targetPort: otlp-grpc, appProtocol: http}",
                 ("Service/jaeger", "port grpc-otlp is named for grpc but has appProtocol http"),
                 id="a Service port whose name and appProtocol disagree"),
    pytest.param("collector-config.yaml", "endpoint: jaeger.sagashop:4317", "endpoint: jaeger.sagashop:16686",
                 ("exporter otlp/jaeger", "sends OTLP over grpc to jaeger port http-query, which speaks http"),
                 id="the collector exporting to Jaeger's UI port"),
    pytest.param("jaeger.yaml", "port: 4317, targetPort: otlp-grpc", "port: 4317, targetPort: admin",
                 ("exporter otlp/jaeger", "Deployment/jaeger takes no OTLP over grpc on port 14269"),
                 id="Jaeger's OTLP Service port sending to its admin port"),
    pytest.param("collector-config.yaml", "exporters: [otlp/jaeger]", "exporters: [otlp/jeager]",
                 ("Deployment/otel-collector", "pipeline traces: exporter otlp/jeager is not defined"),
                 id="a pipeline naming an exporter that is not defined"),
    pytest.param("collector-config.yaml", "endpoint: 0.0.0.0:4318", "endpoint: localhost:4318",
                 ("receiver otlp http listens on localhost:4318, not 0.0.0.0",),
                 id="a receiver on localhost, out of the sidecar's reach"),
    pytest.param("collector-config.yaml", "endpoint: 0.0.0.0:13133", "endpoint: 0.0.0.0:13134",
                 ("Deployment/otel-collector", "readinessProbe must ask the health_check extension"),
                 id="probes that do not ask health_check"),
    pytest.param("otel-collector.yaml", "--config=/conf/config.yaml", "--config=/conf/collector.yaml",
                 ("Deployment/otel-collector", "--config=/conf/collector.yaml is no key of a ConfigMap"),
                 id="a collector configuration file that is not mounted"),
    pytest.param("authorization.yaml", "        - cluster.local/ns/sagashop/sa/payment\n", "",
                 ("Deployment/payment-v1", "does not let payment reach Deployment/otel-collector on port 4318"),
                 id="a part the mesh keeps from the collector"),
    pytest.param("authorization.yaml", 'ports: ["4317"]', 'ports: ["4318"]',
                 ("exporter otlp/jaeger", "does not let otel-collector reach Deployment/jaeger on port 4317"),
                 id="the collector kept from Jaeger"),
    pytest.param("authorization.yaml", "action: ALLOW", "actions: ALLOW",
                 ("AuthorizationPolicy/otel-collector", "unknown field .spec.actions"),
                 id="an overlay's own policy with a field Istio does not know"),
    pytest.param("jaeger.yaml", '        - {name: MEMORY_MAX_TRACES, value: "3000"}\n', "",
                 ("Deployment/jaeger", "in-memory storage needs MEMORY_MAX_TRACES"),
                 id="Jaeger's memory unbounded"),
    pytest.param("jaeger.yaml", "jaegertracing/all-in-one:1.62.0", "jaegertracing/all-in-one:latest",
                 ("kind", "jaegertracing/all-in-one:latest is not pinned"), id="Jaeger's image tagged latest"),
]


@pytest.mark.parametrize(("file", "old", "new", "needles"), TRACE_PIPELINE_BREAKS)
def test_a_broken_trace_pipeline(tree: Path, file: str, old: str, new: str, needles: tuple[str, ...]) -> None:
    edit(tree / OBSERVABILITY / file, old, new)
    assert reported(tree, *needles), all_problems(tree)


PRODUCTION = "deploy/k8s/overlays/production/kustomization.yaml"
CANARY = "deploy/k8s/components/canary"
NEW_PIECE_BREAKS = [
    pytest.param("istio/gateway.yaml", "      request: {remove: [x-sagashop-route]}\n    retries: {attempts: 0}\n"
                 "    timeout: 660s\n  - name: v1-by-header", "      request: {remove: [x-sagashop-route-x]}\n"
                 "    retries: {attempts: 0}\n    timeout: 660s\n  - name: v1-by-header",
                 ("kind", "route v2-by-header: a route of the ingress must remove x-sagashop-route"),
                 id="a client's pin not removed at the edge"),
    pytest.param("istio/gateway.yaml", "  gateways: [sagashop]", "  gateways: [sagashop, mesh]",
                 ("VirtualService/gateway", "bound to the ingress and to the mesh"),
                 id="the edge's VirtualService bound to the mesh too"),
    pytest.param("istio/payment.yaml", "    - destination: {host: payment, subset: v2}\n    retries",
                 "    - destination: {host: payment, subset: v2}\n    headers:\n"
                 "      request: {remove: [x-sagashop-route]}\n    retries",
                 ("VirtualService/payment", "removes x-sagashop-route inside the mesh"),
                 id="a pin removed inside the mesh"),
    pytest.param(PRODUCTION, "        - uri: {prefix: /console}\n", "",
                 ("production", "/console must answer 404 at the edge"), id="an operations path left open"),
    pytest.param(PRODUCTION, "directResponse: {status: 404}", "directResponse: {status: 200}",
                 ("production", "/metrics must answer 404 at the edge"), id="an operations path answered 200"),
    pytest.param(PRODUCTION, "    - {op: remove, path: /spec/http/1}\n    - op: replace\n      path: /spec/http/0",
                 "    - op: add\n      path: /spec/http/0",
                 ("production", "routes by x-sagashop-route, a pin a client could set"),
                 id="production taking version pins from clients"),
    pytest.param(PRODUCTION, "tls: {httpsRedirect: true}", "tls: {httpsRedirect: false}",
                 ("production", "port 80 must only redirect to HTTPS"), id="production serving plain HTTP"),
    pytest.param(PRODUCTION, "  kubectl -n istio-system create secret tls sagashop-tls",
                 "  kubectl create secret tls sagashop-tls", ("production", "does not say how to create the Secret"),
                 id="the TLS Secret undocumented"),
    pytest.param(PRODUCTION, "    - {op: replace, path: /spec/hosts, value: [shop.example.com]}   # your domain\n",
                 "    - {op: replace, path: /spec/hosts, value: [shop.example.org]}\n",
                 ("production", "hosts ['shop.example.org'] are not served by Gateway sagashop"),
                 id="the edge's host not served by its Gateway"),
    pytest.param(f"{CANARY}/runner.yaml", "  verbs: [get, patch]\n---", "  verbs: [get, patch, delete]\n---",
                 ("kind-canary", "Role/canary-runner must allow exactly"), id="the runner allowed more"),
    pytest.param(f"{CANARY}/runner.yaml", "  resourceNames: [sagashop-canary]\n", "",
                 ("kind-canary", "Role/canary-runner must allow exactly"), id="the runner allowed every ConfigMap"),
    pytest.param(f"{CANARY}/run-job.yaml", "serviceAccountName: canary-runner", "serviceAccountName: canary",
                 ("kind-canary", "Job/canary-run-payment-", "ServiceAccount canary does not exist"),
                 id="the Job run by an account that does not exist"),
    pytest.param(f"{CANARY}/run-job.yaml", "backoffLimit: 0", "backoffLimit: 3",
                 ("kind-canary", "needs backoffLimit 0"), id="the Job retried"),
    pytest.param(f"{CANARY}/run-job.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
                 ("kind-canary", "Job/canary-run-payment-", "must be read-only"), id="the Job writable"),
    pytest.param(f"{CANARY}/runner.yaml", "    ports: [{port: 9090, protocol: TCP}]",
                 "    ports: [{port: 9091, protocol: TCP}]", ("kind-canary", "does not reach Prometheus"),
                 id="the Job kept from Prometheus"),
    pytest.param(f"{CANARY}/runner.yaml", "{port: 443, protocol: TCP}, {port: 6443, protocol: TCP}",
                 "{port: 443, protocol: TCP}", ("kind-canary", "does not reach the Kubernetes API"),
                 id="the Job kept from the API server's port"),
    pytest.param("deploy/k8s/overlays/kind-canary/kustomization.yaml", 'value: "10"}', 'value: "25"}',
                 ("kind-canary", "payment is 25 but VirtualService/payment sends 10% to v2"),
                 id="two canary weights for one part"),
    pytest.param("deploy/k8s/base/orchestrator.yaml", "          optional: true ", "          optional: false ",
                 ("Deployment/orchestrator-v1", "must mount ConfigMap sagashop-canary (optional)"),
                 id="the weights' mount required"),
    pytest.param("deploy/k8s/base/order.yaml", "value: postgresql://sagashop_order@", "value: postgresql://sagashop@",
                 ("Deployment/order-v1", "must name the role sagashop_order, not sagashop"),
                 id="a part connecting as the superuser"),
    pytest.param("deploy/k8s/base/payment.yaml", "key: db-password-payment}}", "key: db-password-order}}",
                 ("Deployment/payment-v1", "PGPASSWORD must come from the Secret's key db-password-payment"),
                 id="a part given another part's password"),
    pytest.param("deploy/k8s/base/postgres.yaml", "for part in user order inventory payment shipping orchestrator",
                 "for part in user order inventory payment orchestrator",
                 ("Deployment/shipping-v1", "init script makes no role sagashop_shipping"),
                 id="a role the init script does not make"),
    pytest.param("deploy/k8s/base/postgres.yaml", "        - {name: init, mountPath: /docker-entrypoint-initdb.d, "
                 "readOnly: true}\n", "", ("StatefulSet/postgres", "no init script"), id="the init script not mounted"),
    pytest.param("deploy/k8s/base/inventory.yaml", '"terminationDrainDuration": "10s"',
                 '"terminationDrainDuration": "5s"', ("Deployment/inventory-v1", "must outlast the app's drain (5 s)"),
                 id="a sidecar leaving before its app has drained"),
    pytest.param("deploy/k8s/base/gateway.yaml", "terminationGracePeriodSeconds: 30",
                 "terminationGracePeriodSeconds: 12", ("Deployment/gateway-v1", "within terminationGracePeriodSeconds"),
                 id="a grace period shorter than the drain"),
]


@pytest.mark.parametrize(("file", "old", "new", "needles"), NEW_PIECE_BREAKS)
def test_a_broken_edge_canary_database_or_drain(tree: Path, file: str, old: str, new: str,
                                               needles: tuple[str, ...]) -> None:
    edit(tree / file, old, new)
    assert reported(tree, *needles), all_problems(tree)


NATS = "deploy/k8s/base/nats.yaml"
# the last principals of the mesh's rule admitting the parts to NATS
NATS_RULE_END = ("        - cluster.local/ns/sagashop/sa/notification\n"
                 "        - cluster.local/ns/sagashop/sa/reporting\n"
                 '    to:\n    - operation:\n        ports: ["4222"]')
NATS_BREAKS = [
    pytest.param("deploy/k8s/base/config.env", "SAGASHOP_NATS_URL=nats://nats:4222", "SAGASHOP_NATS_URL=nats://nat:4222",
                 ("Deployment/user-v1", "SAGASHOP_NATS_URL: nat:4222 is no Service port"),
                 id="the parts' NATS URL naming no Service"),
    pytest.param("deploy/k8s/base/config.env", "SAGASHOP_NATS_URL=nats://nats:4222",
                 "SAGASHOP_NATS_URL=nats://nats-headless:6222",
                 ("Deployment/order-v1", "nats-headless:6222 reaches", "not a NATS server's client port"),
                 id="the parts' NATS URL on the routes' port"),
    pytest.param("deploy/k8s/base/config.env", "SAGASHOP_NATS_URL=nats://nats:4222\n", "",
                 ("Deployment/payment-v1", "missing SAGASHOP_NATS_URL"), id="the parts given no NATS URL"),
    pytest.param("istio/authorization.yaml", "        - cluster.local/ns/sagashop/sa/orchestrator\n" + NATS_RULE_END,
                 NATS_RULE_END,
                 ("Deployment/orchestrator-v1", "keep it from StatefulSet/nats on port 4222"),
                 id="a part the mesh keeps from NATS"),
    pytest.param(NATS, "        - --store_dir=/data\n", "        - --store_dir=/tmp/jetstream\n",
                 ("StatefulSet/nats", "store /tmp/jetstream is on no PersistentVolumeClaim"),
                 id="JetStream's store off the volume"),
    pytest.param(NATS, "        - --jetstream\n", "", ("StatefulSet/nats", "JetStream is off"), id="JetStream off"),
    pytest.param(NATS, "maxUnavailable: 1                     # of 3", "maxUnavailable: 2                     # of 3",
                 ("production", "lets 2 of 3 servers go"), id="a PodDisruptionBudget that breaks the quorum"),
    pytest.param(NATS, "# of 3, a JetStream cluster keeps its quorum\n  selector:\n    matchLabels: {app: nats}",
                 "# of 3, a JetStream cluster keeps its quorum\n  selector:\n    matchLabels: {app: nats-server}",
                 ("StatefulSet/nats", "no PodDisruptionBudget selects its pods"),
                 id="a PodDisruptionBudget selecting no NATS pod"),
    pytest.param(NATS, 'httpGet: {path: "/healthz?js-enabled-only=true", port: monitor}\n          periodSeconds: 10',
                 'httpGet: {path: "/varz", port: monitor}\n          periodSeconds: 10',
                 ("StatefulSet/nats", "readinessProbe must ask /healthz"), id="a readiness probe not asking /healthz"),
    pytest.param(PRODUCTION, ",nats://nats-2.nats-headless:6222", "",
                 ("production", "StatefulSet/nats", "must name each of its 3 servers"), id="a route left out"),
    pytest.param(PRODUCTION, "- {name: nats, count: 3}", "- {name: nats, count: 4}",
                 ("production", "4 servers: JetStream needs an odd number"), id="an even cluster"),
    pytest.param(NATS, "  clusterIP: None\n", "", ("production", "serviceName must be a headless Service"),
                 id="the routes' Service not headless"),
    pytest.param("deploy/k8s/base/network-policies.yaml",
                 "        matchLabels: {app: nats}\n    ports: [{port: cluster}]",
                 "        matchLabels: {app: nats}\n    ports: [{port: client}]",
                 ("production", "keep its servers from each other's cluster port 6222"),
                 id="the servers kept from each other's routes"),
    pytest.param(NATS, "        - --name=$(POD_NAME)", "        - --name=nats",
                 ("production", "each server needs a name of its own"), id="one name for every server"),
]


@pytest.mark.parametrize(("file", "old", "new", "needles"), NATS_BREAKS)
def test_a_broken_nats(tree: Path, file: str, old: str, new: str, needles: tuple[str, ...]) -> None:
    edit(tree / file, old, new)
    assert reported(tree, *needles), all_problems(tree)


MAILSINK = "deploy/k8s/components/mailsink"
NOTIFICATION, REPORTING = "deploy/k8s/base/notification.yaml", "deploy/k8s/base/reporting.yaml"
SMTP_FROM_SECRET = ("        - name: SAGASHOP_SMTP_URL       # smtp://[user:password@]host[:port]: a Secret's, as it "
                    "may carry a password\n          valueFrom: {secretKeyRef: {name: sagashop-secrets, key: "
                    "smtp-url}}\n")
REPORTING_PASSWORD = "          valueFrom: {secretKeyRef: {name: sagashop-secrets, key: db-password-reporting}}\n"
REPORTING_POLICY = ("  name: reporting\n  namespace: sagashop\nspec:\n  selector:\n"
                    "    matchLabels: {app: reporting}\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n"
                    "        principals: [cluster.local/ns/sagashop/sa/gateway")
NOTIFICATION_POLICY = ("    matchLabels: {app: notification}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n"
                       "    - podSelector:\n        matchExpressions:\n"
                       "        - {key: app, operator: In, values: [gateway")
CONSUMER_BREAKS = [
    pytest.param(NOTIFICATION, SMTP_FROM_SECRET, "",
                 ("production", "Deployment/notification-v1", "missing SAGASHOP_SMTP_URL"),
                 id="notification without an SMTP URL"),
    pytest.param(NOTIFICATION, SMTP_FROM_SECRET,
                 "        - {name: SAGASHOP_SMTP_URL, value: 'smtp://shop:s3cret@smtp.example.com:587'}\n",
                 ("production", "Deployment/notification-v1",
                  "must come from the Secret sagashop-secrets, key smtp-url"),
                 id="an SMTP URL with its password in plain text"),
    pytest.param(REPORTING, REPORTING_PASSWORD, REPORTING_PASSWORD + SMTP_FROM_SECRET,
                 ("Deployment/reporting-v1", "SAGASHOP_SMTP_URL comes from a Secret, and "
                                                             "reporting never reads it"),
                 id="the mail server's URL given to a part that sends no email"),
    pytest.param(PRODUCTION, "#     --from-literal=smtp-url='smtp://USER:PASSWORD@smtp.example.com:587'\n", "",
                 ("production", "does not say how to create the key smtp-url"),
                 id="the Secret's smtp-url undocumented"),
    pytest.param("deploy/k8s/overlays/kind/kustomization.yaml", "smtp-url=smtp://mailpit:1025",
                 "smtp-url=smtp://mailpit:25", ("kind", "Deployment/notification-v1", "mailpit:25 is no Service port"),
                 id="the kind SMTP URL on no port of the mail sink"),
    pytest.param(f"{MAILSINK}/mailpit.yaml", "{name: tcp-smtp, port: 1025, targetPort: smtp, appProtocol: tcp}",
                 "{name: smtp, port: 1025, targetPort: smtp, appProtocol: http}",
                 ("kind", "Service mailpit port smtp speaks http, not tcp"),
                 id="the mail sink's SMTP port taken for HTTP"),
    pytest.param(f"{MAILSINK}/authorization.yaml", "principals: [cluster.local/ns/sagashop/sa/notification]",
                 "principals: [cluster.local/ns/sagashop/sa/reporting]",
                 ("kind", "Deployment/notification-v1", "keep it from Deployment/mailpit on port 1025"),
                 id="notification kept from the mail sink by the mesh"),
    pytest.param(f"{MAILSINK}/network-policies.yaml", "matchLabels: {app: notification}", "matchLabels: {app: gateway}",
                 ("kind", "Deployment/notification-v1", "keep it from Deployment/mailpit on port 1025"),
                 id="notification kept from the mail sink by the network"),
    pytest.param("istio/authorization.yaml", REPORTING_POLICY + "]",
                 REPORTING_POLICY + ", cluster.local/ns/sagashop/sa/orchestrator]",
                 ("AuthorizationPolicy/reporting", "lets cluster.local/ns/sagashop/sa/orchestrator call reporting, "
                                                   "which only gateway may"),
                 id="the mesh letting a part other than the gateway call reporting"),
    pytest.param("deploy/k8s/base/network-policies.yaml", NOTIFICATION_POLICY + "]}",
                 NOTIFICATION_POLICY + ", payment]}",
                 ("the network policies let payment reach notification's gRPC port, which only gateway may",),
                 id="the network letting a part other than the gateway call notification"),
    pytest.param("deploy/k8s/base/postgres.yaml", "orchestrator notification reporting; do",
                 "orchestrator notification; do",
                 ("Deployment/reporting-v1", "init script makes no role sagashop_reporting"),
                 id="no database role for reporting"),
    pytest.param("deploy/k8s/base/postgres.yaml", "        - name: ROLE_PASSWORD_NOTIFICATION   # for the init script\n"
                 "          valueFrom: {secretKeyRef: {name: sagashop-secrets, key: db-password-notification}}\n", "",
                 ("Deployment/notification-v1", "init script makes no role sagashop_notification"),
                 id="no password for notification's database role"),
    pytest.param("deploy/k8s/overlays/kind/kustomization.yaml",
                 "  - db-password-reporting=dev-only-db-password-reporting\n", "",
                 ("kind", "Secret sagashop-secrets", "db-password-reporting not found"),
                 id="reporting's database password not generated on kind"),
    pytest.param("deploy/k8s/base/network-policies.yaml", "values: [user, order, inventory, payment, shipping, "
                 "orchestrator, notification,\n                                         reporting]}",
                 "values: [user, order, inventory, payment, shipping, orchestrator, notification]}",
                 ("Deployment/reporting-v1", "keep it from StatefulSet/postgres on port 5432"),
                 id="reporting kept from PostgreSQL by the network"),
    pytest.param("istio/authorization.yaml", NATS_RULE_END, NATS_RULE_END.split("\n", 1)[1],
                 ("Deployment/notification-v1", "keep it from StatefulSet/nats on port 4222"),
                 id="notification kept from NATS by the mesh"),
    pytest.param("deploy/k8s/base/config.env", "SAGASHOP_REPORTING_HOST=reporting\n", "",
                 ("Deployment/gateway-v1", "missing SAGASHOP_REPORTING_HOST"),
                 id="the gateway not told where reporting is"),
    pytest.param("deploy/k8s/base/config.env", "SAGASHOP_NOTIFICATION_PORT=50057", "SAGASHOP_NOTIFICATION_PORT=50058",
                 ("notification at notification:50058 is no Service port",), id="notification's port mistyped"),
    pytest.param("deploy/k8s/base/notification.yaml", '"terminationDrainDuration": "10s"',
                 '"terminationDrainDuration": "4s"', ("Deployment/notification-v1", "must outlast the app's drain"),
                 id="notification's sidecar leaving before its app has drained"),
]


@pytest.mark.parametrize(("file", "old", "new", "needles"), CONSUMER_BREAKS)
def test_a_broken_event_consumer_or_mail_sink(tree: Path, file: str, old: str, new: str,
                                             needles: tuple[str, ...]) -> None:
    edit(tree / file, old, new)
    assert reported(tree, *needles), all_problems(tree)
