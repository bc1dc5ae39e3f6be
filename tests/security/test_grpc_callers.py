"""No part's gRPC port serves a stranger: on every service of the running shop, a call without the caller token
the shop's parts sign theirs with, or with one made with another key, is refused UNAUTHENTICATED and logged; the
parts' own calls (a checkout through the gateway) and health checks (the kubelet's probes carry nothing) go on."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sagashop.kit.callers import credential
from sagashop.kit.settings import SERVICES
from sagashop.v1 import common_pb2, faults_pb2_grpc

FORGED = credential("another-key-" + "x" * 32, "gateway")


def refused(port: int, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode | None:
    """The status of a FaultService listing (every part serves it) made with `metadata`; None if it was served."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            faults_pb2_grpc.FaultServiceStub(channel).ListFaults(common_pb2.Empty(), timeout=10, metadata=metadata)
        except grpc.RpcError as e:
            return e.code()
    return None


@pytest.mark.parametrize("service", SERVICES)
def test_a_stranger_is_refused_by_every_service_and_a_health_check_is_not(shop, service):
    port = int(shop.env[f"SAGASHOP_{service.upper()}_PORT"])
    assert refused(port, ()) == grpc.StatusCode.UNAUTHENTICATED
    assert refused(port, FORGED) == grpc.StatusCode.UNAUTHENTICATED
    assert refused(port, (("x-sagashop-caller", "gateway"),)) == grpc.StatusCode.UNAUTHENTICATED
    assert refused(port, shop.signed) is None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_refusal_is_logged_and_the_shop_serves_its_customers_meanwhile(shop):
    refused(int(shop.env["SAGASHOP_PAYMENT_PORT"]), ())
    assert shop.place_order({shop.product(stock=1): 1})["status"] == "APPROVED"
    assert "refused a call of /sagashop.v1.FaultService/ListFaults without a valid x-sagashop-caller" in (
        shop.log.read_text())
