"""Every SAGASHOP_* variable, read in one place; the port and host of each part."""

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET = 32  # characters of a signing key: HS256's own 256 bits at least, as RFC 7518 asks
INTERNAL_SECRET_FILE = "internal-secret"  # in the data directory, written by `sagashop up` when it made one

Service = Literal["user", "order", "inventory", "payment", "shipping", "orchestrator", "notification", "reporting"]
# the gRPC services; notification and reporting also consume the domain events (EVENT_CONSUMERS)
Part = Literal["gateway", Service]
SERVICES: tuple[Service, ...] = get_args(Service)
PARTS: tuple[Part, ...] = get_args(Part)
# the parts the orchestrator's sagas call: a saga pins each to a version of its own (per-part canaries)
SAGA_PARTS: tuple[str, ...] = ("order", "inventory", "payment", "shipping")
# the parts that consume domain events into a database of their own (an inbox, dead letters, `events rebuild`)
EVENT_CONSUMERS: tuple[str, ...] = ("notification", "reporting")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAGASHOP_", extra="ignore")

    database_url: str | None = Field(None, description=(
        "SQLAlchemy URL of a PostgreSQL server (`postgresql://user@host/db` works as written); each service keeps its "
        "own schema (`user`, `order`, ...) in that database, created and migrated at start. Unset: a SQLite file per "
        "service under `SAGASHOP_DATA_DIR`"))
    database_pool_size: int = Field(16, ge=1, description=(
        "PostgreSQL connections each part keeps open (half as many more at a peak, closed once it passes): 16 covers "
        "a part's 16 concurrent calls; lower it when many parts or replicas share one server's `max_connections`"))
    database_wait_seconds: float = Field(60.0, ge=0, description=(
        "how long a service starting waits for a PostgreSQL server that does not answer yet (connection refused, "
        "its name not resolvable yet, still starting up), trying again with growing pauses; then it stops with an "
        "error naming the server. A refused login fails at once. See [schema.md](schema.md)"))
    data_dir: Path = Field(Path(".data"), description="where the SQLite files live when no database URL is set")
    redis_url: str | None = Field(None, description=(
        "Redis for the gateway's idempotency store and rate limits and the shared circuit-breaker state. Unset: "
        "in-process stores"))
    nats_url: str | None = Field(None, description=(
        "NATS server with JetStream (e.g. `nats://127.0.0.1:4222`) that carries the domain events. Unset: `sagashop "
        "up` runs its own under the data directory; a part started alone publishes none (its events wait in its "
        "outbox)"))
    events_name: str = Field("sagashop", pattern=r"^[a-z][a-z0-9_]{0,31}$", description=(
        "the word a shop's streams and subjects on its NATS server are named after: stream `SAGASHOP_EVENTS`, "
        "subjects `sagashop.events.<event_type>` by default (docs/events.md); another word keeps shops that share "
        "one server apart"))
    event_ack_wait_seconds: float = Field(30.0, gt=0, description=(
        "how long an event a consumer fetched may stay unacknowledged before it is delivered again (its consumer "
        "stopped mid-batch): long enough for a batch's transaction, short enough that a crash delays little. Set "
        "when a consumer's durable consumer is first made"))
    nats_port: int = Field(4223, ge=1, le=65535, description=(
        "port of the NATS server `sagashop up` runs on 127.0.0.1 when `SAGASHOP_NATS_URL` is unset: 4223, so that a "
        "NATS server of the machine's own on 4222 is left alone"))
    smtp_url: str | None = Field(None, description=(
        "where the notification service sends its emails: `smtp://[user:password@]host[:port]` (STARTTLS when the "
        "server offers it), `smtps://...` (TLS from the start). Unset: `sagashop up` runs a local SMTP sink on "
        "127.0.0.1 that keeps each message as a file under `<data dir>/mail`; a notification service started alone "
        "without it retries, then dead-letters, every email"))
    smtp_port: int = Field(2525, ge=1, le=65535, description=(
        "port of the SMTP sink `sagashop up` runs on 127.0.0.1 when `SAGASHOP_SMTP_URL` is unset"))
    mail_from: str = Field("sagashop <orders@sagashop.local>", description="the From: of the customers' emails")
    catalog_cache_seconds: float = Field(60.0, ge=0, description=(
        "how long the gateway keeps a product read in its cache (Redis when `SAGASHOP_REDIS_URL` is set, in-process "
        "otherwise) at most: a safety net, as `product.changed` and stock events remove it as soon as the gateway "
        "reads them; 0 turns the cache off"))
    bind: str = Field("127.0.0.1", description="address every part listens on (`0.0.0.0` in a pod)")
    gateway_port: int = Field(8080, description="HTTP port of the gateway")
    user_port: int = Field(50051, description="gRPC port of the user service")
    order_port: int = Field(50052, description="gRPC port of the order service")
    inventory_port: int = Field(50053, description="gRPC port of the inventory service")
    payment_port: int = Field(50054, description="gRPC port of the payment service")
    shipping_port: int = Field(50055, description="gRPC port of the shipping service")
    orchestrator_port: int = Field(50056, description="gRPC port of the orchestrator")
    notification_port: int = Field(50057, description="gRPC port of the notification service")
    reporting_port: int = Field(50058, description="gRPC port of the reporting service")
    user_host: str = Field("127.0.0.1", description="where the other parts find the user service (its Service name "
                           "in Kubernetes)")
    order_host: str = Field("127.0.0.1", description="where the other parts find the order service")
    inventory_host: str = Field("127.0.0.1", description="where the other parts find the inventory service")
    payment_host: str = Field("127.0.0.1", description="where the other parts find the payment service")
    shipping_host: str = Field("127.0.0.1", description="where the other parts find the shipping service")
    orchestrator_host: str = Field("127.0.0.1", description="where the gateway finds the orchestrator")
    notification_host: str = Field("127.0.0.1", description="where the gateway finds the notification service")
    reporting_host: str = Field("127.0.0.1", description="where the gateway finds the reporting service")
    admin_email: str = Field("admin@sagashop.local", description=(
        "the admin account the user service ensures at start"))
    admin_password: str | None = Field(None, description=(
        "the admin's password, reset to this one at start. Unset: `sagashop up` generates one and prints it; a bare "
        "`sagashop serve user` leaves an existing admin's password as it is and gives a new admin a random one told "
        "to no one (a password is never logged)"))
    faults_enabled: bool = Field(False, description=(
        "whether the fault-injection admin API (`/v1/admin/faults`) and the parts' fault rules answer: off unless "
        "asked for (a rule can slow, fail or kill a part); `sagashop up` and the kind overlays turn it on"))
    faults_seed: int | None = Field(None, description=(
        "seeds each part's random fault draws, so a failing run can be replayed. Unset: random"))
    version: str = Field("v1", description=(
        "the version a part reports: `x-served-by: <service>@<version>` on every gRPC reply, the `version` label of "
        "its metrics (set from the pod's `version` label in Kubernetes)"))
    internal_secret: str | None = Field(None, min_length=MIN_SECRET, description=(
        f"the key every part signs its gRPC calls with and checks its callers' by, at least {MIN_SECRET} characters: "
        "a call without a valid signature is refused (UNAUTHENTICATED) and logged, health checks excepted. Unset: "
        "`sagashop up` generates one per run and keeps it in the data directory for the tools beside it; a bare "
        "part without it refuses every call"))
    jwt_secret: str | None = Field(None, min_length=MIN_SECRET, description=(
        f"signing key of access tokens, at least {MIN_SECRET} characters (a shorter one is refused at start); "
        "required when several gateways run. Unset: `sagashop up` generates one per run, a bare gateway one per "
        "process"))
    token_ttl_seconds: int = Field(3600, description="lifetime of an access token")
    step_deadline_seconds: float = Field(20.0, description=(
        "how long a saga step keeps retrying a service that does not answer before the saga compensates "
        "(`<service>_unavailable`)"))
    breaker_fail_max: int = Field(5, description="transient failures in a row that open a dependency's circuit")
    breaker_reset_seconds: float = Field(10.0, description=(
        "how long an open circuit fails fast before it lets one trial call through"))
    canary_weights_dir: Path | None = Field(None, description=(
        "where the orchestrator reads the canary weight of each part a saga calls: a file per part named after it "
        "(`order`, `inventory`, `payment`, `shipping`) holding the percent, 0 to 100, of new sagas it pins to that "
        "part's v2 while that v2 answers its health check (v1 otherwise); the ConfigMap `sagashop-canary` mounted as "
        "a directory, `/etc/sagashop/canary`, in Kubernetes. "
        "Read again at most once a second, no restart needed; a missing file counts 0, a bad one keeps the last "
        "good value. Unset: every saga is pinned to v1"))
    canary_addresses: dict[str, str] = Field({}, description=(
        "without a mesh: JSON mapping a service to the `host:port` of its v2 process, e.g. "
        "`{\"payment\": \"127.0.0.1:50154\"}`, where a saga pinned to that service's v2 sends its calls"))
    park_after_attempts: int = Field(20, description=(
        "failures of a compensation before its saga is parked as NEEDS_ATTENTION for an operator"))
    saga_lease_seconds: float = Field(10.0, description=(
        "how soon another orchestrator resumes the sagas of one that stopped renewing its lease"))
    reservation_ttl_seconds: float = Field(900.0, description=(
        "age at which a HELD stock reservation has lost its saga and the inventory's sweeper releases it"))
    sweep_interval_seconds: float = Field(30.0, description=(
        "how often each inventory replica looks for expired reservations"))
    log_level: str = Field("INFO", description="log level of every part")
    log_format: Literal["json", "text"] | None = Field(None, description=(
        "`json`: one JSON object per line; `text`: one readable line, coloured on a terminal. Unset: text on a "
        "terminal, JSON otherwise (`sagashop up` gives its parts text)"))
    trace_file: Path | None = Field(None, description=(
        "a debugging aid: every process also appends its spans to this file, one JSON object per line"))
    metrics_port: int | None = Field(None, description=(
        "where a gRPC part serves its Prometheus metrics (the gateway serves `/metrics` on its own port). Unset: "
        "not served; `sagashop up` sets each part's gRPC port + 1000"))
    idempotency_ttl_seconds: int = Field(86_400, description=(
        "how long the gateway remembers an `Idempotency-Key`'s body and order (a fast path: the orchestrator keeps "
        "every key for good)"))
    idempotency_wait_seconds: float = Field(2.0, description=(
        "how long a repeat waits for the first request of its key to finish before it is answered "
        "`409 idempotency_in_progress` with `Retry-After`"))
    rate_limit_user_per_second: float = Field(50.0, description=(
        "sustained requests a signed-in user may make (a token bucket, in Redis when `SAGASHOP_REDIS_URL` is set); "
        "beyond: `429 rate_limited` with `Retry-After`"))
    rate_limit_user_burst: int = Field(100, description="requests a signed-in user may make at once")
    rate_limit_address_per_second: float = Field(200.0, description="sustained requests from one client address")
    rate_limit_address_burst: int = Field(400, description="requests from one client address at once")
    rate_limit_orders_per_hour: int = Field(300, ge=1, description=(
        "orders one account may place per hour (a bucket refilled evenly, all of them at once if need be); beyond: "
        "`429 rate_limited` with `Retry-After`. With SAGASHOP_MAX_PENDING_ORDERS, what bounds one account's storage"))
    max_pending_orders: int = Field(20, ge=1, description=(
        "orders one account may have still PENDING (their checkout under way) at once; beyond: `POST /v1/orders` "
        "answers `429 rate_limited`"))
    rate_limit_sign_in_address_per_minute: int = Field(60, ge=1, description=(
        "logins and sign-ups from one client address per minute (a bucket of their own, as each costs a password "
        "hash); beyond: `429 rate_limited` with `Retry-After`"))
    rate_limit_sign_in_account_per_minute: int = Field(10, ge=1, description=(
        "logins and sign-ups naming one email address per minute, from any client address (slows guessing one "
        "account's password)"))
    max_body_bytes: int = Field(65_536, description=(
        "largest request body the gateway reads (`413 payload_too_large` beyond)"))
    cors_origins: str = Field("", description=(
        "comma-separated origins a browser may call the gateway from. Empty: none"))
    forwarded_allow_ips: str = Field("127.0.0.1,::1", description=(
        "proxies whose `X-Forwarded-For` names the client address (behind an ingress: its addresses only; any "
        "other sender could name any address and so escape the per-address limits)"))

    def caller_secret(self) -> str | None:
        """SAGASHOP_INTERNAL_SECRET, or the one `sagashop up` keeps in the data directory (INTERNAL_SECRET_FILE)."""
        try:
            return self.internal_secret or (self.data_dir / INTERNAL_SECRET_FILE).read_text().strip() or None
        except OSError:
            return None

    def port(self, part: str) -> int:
        return int(getattr(self, f"{part}_port"))

    def address(self, service: str) -> str:
        return f"{getattr(self, f'{service}_host')}:{self.port(service)}"
