"""The clients of every gRPC service, one long-lived channel each."""

from typing import Any

from sagashop.kit.grpcclient import Dependency
from sagashop.kit.settings import SERVICES, Settings
from sagashop.v1 import (
    inventory_pb2_grpc,
    notification_pb2_grpc,
    orchestrator_pb2_grpc,
    order_pb2_grpc,
    payment_pb2_grpc,
    reporting_pb2_grpc,
    shipping_pb2_grpc,
    user_pb2_grpc,
)

STUBS: dict[str, Any] = {
    "user": user_pb2_grpc.UserServiceStub,
    "order": order_pb2_grpc.OrderServiceStub,
    "inventory": inventory_pb2_grpc.InventoryServiceStub,
    "payment": payment_pb2_grpc.PaymentServiceStub,
    "shipping": shipping_pb2_grpc.ShippingServiceStub,
    "orchestrator": orchestrator_pb2_grpc.OrchestratorServiceStub,
    "notification": notification_pb2_grpc.NotificationServiceStub,
    "reporting": reporting_pb2_grpc.ReportingServiceStub,
}


class Backends:
    """With `route`, every call is pinned to that version of its service: in a mesh the route header picks the
    version; without one, SAGASHOP_CANARY_ADDRESSES names where a service's canary (v2) listens."""

    def __init__(self, settings: Settings, caller: str, names: tuple[str, ...] = SERVICES,
                 route: str | None = None) -> None:
        """`caller`: the part these clients are for (each part has circuit breakers of its own)."""
        def address(name: str) -> str:
            return settings.canary_addresses.get(name, "") if route == "v2" else ""

        secret = settings.caller_secret()
        self.deps = {name: Dependency(name, address(name) or settings.address(name), STUBS[name], caller=caller,
                                      secret=secret,
                                      fail_max=settings.breaker_fail_max, reset_timeout=settings.breaker_reset_seconds,
                                      redis_url=settings.redis_url, route=route)
                     for name in names}

    @property
    def user(self) -> Dependency[user_pb2_grpc.UserServiceStub]:
        return self.deps["user"]

    @property
    def order(self) -> Dependency[order_pb2_grpc.OrderServiceStub]:
        return self.deps["order"]

    @property
    def inventory(self) -> Dependency[inventory_pb2_grpc.InventoryServiceStub]:
        return self.deps["inventory"]

    @property
    def payment(self) -> Dependency[payment_pb2_grpc.PaymentServiceStub]:
        return self.deps["payment"]

    @property
    def shipping(self) -> Dependency[shipping_pb2_grpc.ShippingServiceStub]:
        return self.deps["shipping"]

    @property
    def orchestrator(self) -> Dependency[orchestrator_pb2_grpc.OrchestratorServiceStub]:
        return self.deps["orchestrator"]

    @property
    def notification(self) -> Dependency[notification_pb2_grpc.NotificationServiceStub]:
        return self.deps["notification"]

    @property
    def reporting(self) -> Dependency[reporting_pb2_grpc.ReportingServiceStub]:
        return self.deps["reporting"]

    async def close(self) -> None:
        for dep in self.deps.values():
            await dep.close()
