"""Every SAGASHOP_* variable, read in one place; the port and host of each part."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("user", "order", "inventory", "payment", "shipping", "orchestrator")
PARTS = ("gateway", *SERVICES)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAGASHOP_", extra="ignore")

    database_url: str | None = None  # None: SQLite files under data_dir
    database_pool_size: int = Field(16, ge=1)  # PostgreSQL connections each part keeps open (half as many more at
    # a peak): 16 covers a part's 16 concurrent calls; lower it when many parts share one server
    data_dir: Path = Path(".data")
    redis_url: str | None = None  # None: in-process stores
    bind: str = "127.0.0.1"
    gateway_port: int = 8080
    user_port: int = 50051
    order_port: int = 50052
    inventory_port: int = 50053
    payment_port: int = 50054
    shipping_port: int = 50055
    orchestrator_port: int = 50056
    user_host: str = "127.0.0.1"
    order_host: str = "127.0.0.1"
    inventory_host: str = "127.0.0.1"
    payment_host: str = "127.0.0.1"
    shipping_host: str = "127.0.0.1"
    orchestrator_host: str = "127.0.0.1"
    admin_email: str = "admin@sagashop.local"
    admin_password: str | None = None  # None: `serve user` generates one and logs it
    faults_enabled: bool = True
    faults_seed: int | None = None  # seeds the fault rules' random draws, to replay a run
    version: str = "v1"
    jwt_secret: str | None = None
    token_ttl_seconds: int = 3600
    step_deadline_seconds: float = 20.0  # how long a saga step may keep retrying a service that is down
    breaker_fail_max: int = 5  # transient failures in a row that open a dependency's circuit
    breaker_reset_seconds: float = 10.0  # how long an open circuit fails fast before one trial call
    canary_percent: float = 0.0  # share of new sagas pinned to the canary (v2) version set, 0 to 100
    canary_addresses: dict[str, str] = {}  # without a mesh: service -> host:port of its v2, e.g. {"payment": ...}
    park_after_attempts: int = 20  # a compensation failing this often parks its saga as NEEDS_ATTENTION
    saga_lease_seconds: float = 10.0  # an orchestrator that stops renewing loses its sagas to another this late
    reservation_ttl_seconds: float = 900.0  # a HELD reservation this old has lost its saga: the sweeper releases it
    sweep_interval_seconds: float = 30.0  # how often each inventory replica looks for expired reservations
    log_level: str = "INFO"
    log_format: Literal["json", "text"] | None = None  # None: text on a terminal, JSON lines otherwise
    trace_file: Path | None = None  # a debugging aid: every process also appends its spans here as JSON lines
    metrics_port: int | None = None  # serve Prometheus metrics of a gRPC part here (the gateway has /metrics)
    idempotency_ttl_seconds: int = 86_400  # how long the gateway remembers an Idempotency-Key's body and order
    idempotency_wait_seconds: float = 2.0  # how long a repeat waits for the first request of its key to finish
    rate_limit_user_per_second: float = 50.0  # sustained requests a signed-in user may make
    rate_limit_user_burst: int = 100  # requests a signed-in user may make at once
    rate_limit_address_per_second: float = 200.0  # sustained requests from one client address
    rate_limit_address_burst: int = 400  # requests from one client address at once
    max_body_bytes: int = 65_536  # largest request body the gateway reads (413 payload_too_large beyond)
    cors_origins: str = ""  # comma-separated browser origins allowed to call the gateway; empty: none
    forwarded_allow_ips: str = "127.0.0.1,::1"  # proxies trusted to name the client in X-Forwarded-For

    def port(self, part: str) -> int:
        return int(getattr(self, f"{part}_port"))

    def address(self, service: str) -> str:
        return f"{getattr(self, f'{service}_host')}:{self.port(service)}"
