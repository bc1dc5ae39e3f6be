"""Who may call a part's gRPC services: a part holding the deployment's internal secret. Each of its calls carries
`x-sagashop-caller: <caller>.<HMAC-SHA256(secret, caller)>`; a server refuses any other call with UNAUTHENTICATED
and says so in its log (health checks excepted: the kubelet's probes carry nothing). In a mesh, Istio's mutual TLS
identities stay the main line; this holds without one: a port reached from a pod without a sidecar, or from
another program on a laptop's loopback."""

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter

log = logging.getLogger(__name__)
HEADER = "x-sagashop-caller"
FREE = "/grpc.health.v1.Health/"  # probes and readiness checks, from anyone
KNOWN_MAX = 1_000  # tokens remembered as checked; a stranger's made-up ones are not all kept
REFUSED = Counter("sagashop_grpc_server_refused_total", "calls refused for want of a valid caller token")

Metadata = tuple[tuple[str, str], ...]


def _mac(secret: str, caller: str) -> str:
    return hmac.new(secret.encode(), caller.encode(), hashlib.sha256).hexdigest()


def credential(secret: str | None, caller: str) -> Metadata:
    """The metadata a part's calls carry (none without a secret: such calls are refused)."""
    return ((HEADER, f"{caller}.{_mac(secret, caller)}"),) if secret else ()


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"a call needs a valid {HEADER}")


# ends any call, unary or streaming, before a message
REFUSAL: "grpc.RpcMethodHandler[Any, Any]" = grpc.unary_unary_rpc_method_handler(_refuse)


class Callers(grpc.aio.ServerInterceptor):
    """Admits the calls that carry a token made with `secret` (with none, only health checks)."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self.known: dict[str, bool] = {}  # token -> whether it is valid
        self.refused, self.logged_at = 0, 0.0

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]], details: grpc.HandlerCallDetails,
    ) -> Any:
        if details.method.startswith(FREE) or self.admits(details.invocation_metadata):
            return await continuation(details)
        REFUSED.inc()
        self.refused += 1
        if (moment := time.monotonic()) - self.logged_at >= 1.0:  # a flood of strangers logs a line a second
            self.logged_at = moment
            log.warning("refused a call of %s without a valid %s (UNAUTHENTICATED); %d refused so far",
                        details.method, HEADER, self.refused)
        return REFUSAL

    def admits(self, metadata: Any) -> bool:
        token = next((value for key, value in metadata or () if key == HEADER), None)
        if token is None or self.secret is None:
            return False
        if (valid := self.known.get(token)) is None:
            caller, _, mac = str(token).rpartition(".")
            valid = hmac.compare_digest(mac, _mac(self.secret, caller))
            if len(self.known) < KNOWN_MAX:
                self.known[token] = valid
        return valid
