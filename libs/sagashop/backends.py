"""The clients of every gRPC service, one long-lived channel each."""

from typing import Any

from sagashop.kit.grpcclient import Dependency
from sagashop.kit.settings import SERVICES, Settings
from sagashop.v1 import (
    faults_pb2_grpc,
    inventory_pb2_grpc,
    orchestrator_pb2_grpc,
    order_pb2_grpc,
    payment_pb2_grpc,
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
}


class Backends:
    def __init__(self, settings: Settings, names: tuple[str, ...] = SERVICES) -> None:
        self.deps = {name: Dependency(name, settings.address(name), STUBS[name], fail_max=settings.breaker_fail_max,
                                      reset_timeout=settings.breaker_reset_seconds, redis_url=settings.redis_url)
                     for name in names}
        self.faults = {name: faults_pb2_grpc.FaultServiceStub(dep.channel) for name, dep in self.deps.items()}

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

    async def close(self) -> None:
        for dep in self.deps.values():
            await dep.close()
