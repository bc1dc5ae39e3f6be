"""`sagashop up`: every part under one supervisor, ready, seeded, and stopped cleanly; before them, unless
SAGASHOP_NATS_URL names one, a NATS server of its own (broker.py), and unless SAGASHOP_SMTP_URL names one, an SMTP
sink of its own (mailsink.py), each given to every part and stopped after them."""

import asyncio
import os
import secrets
import sys

from sagashop.backends import Backends
from sagashop.kit.errors import DomainError
from sagashop.kit.settings import INTERNAL_SECRET_FILE, PARTS, SERVICES, Settings
from sagashop.v1 import inventory_pb2

from ..shopclient import ShopClient
from . import broker, mailsink
from .broker import CannotRun, LocalNats
from .mailsink import LocalMailSink
from .parts import command, part_env
from .supervisor import Part, Supervisor

READY_WITHIN = 120.0
PID_DIR = "run"  # in the data directory: `<process>.pid` of each process up runs, while it runs
METRICS_OFFSET = 1000  # each gRPC part serves its metrics on its port + 1000 (user 51051, ...)
DEMO_CATALOG = [  # sku, name, price in cents, stock
    ("LAMP", "Desk lamp", 3_900, 50),
    ("SOFA", "Three-seat sofa", 89_900, 5),
    ("MUG", "Stoneware mug", 1_200, 200),
    ("RUG", "Wool rug", 24_900, 10),
    ("CHAIR", "Oak chair", 12_900, 20),
]


async def run(settings: Settings) -> None:
    password = settings.admin_password or secrets.token_urlsafe(12)
    env = {"SAGASHOP_ADMIN_PASSWORD": password, "SAGASHOP_JWT_SECRET": settings.jwt_secret or secrets.token_urlsafe(32),
           "SAGASHOP_INTERNAL_SECRET": internal_secret(settings),
           "SAGASHOP_LOG_FORMAT": settings.log_format or "text",  # the parts' lines are read here, by a person
           # a lab, unless told otherwise: faults on, and room for the tools' sign-ups, all from 127.0.0.1
           "SAGASHOP_FAULTS_ENABLED": os.environ.get("SAGASHOP_FAULTS_ENABLED", "true"),
           "SAGASHOP_RATE_LIMIT_SIGN_IN_ADDRESS_PER_MINUTE": os.environ.get(
               "SAGASHOP_RATE_LIMIT_SIGN_IN_ADDRESS_PER_MINUTE", "600")}
    nats = None if settings.nats_url else LocalNats(settings.data_dir, settings.nats_port)
    try:
        nats_argv = nats.argv() if nats else []
    except CannotRun as e:
        print(f"sagashop: cannot run a NATS server: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if nats:
        env["SAGASHOP_NATS_URL"] = nats.url
    sink = None if settings.smtp_url else LocalMailSink(settings.data_dir, settings.smtp_port)
    if sink:
        env["SAGASHOP_SMTP_URL"] = sink.url
    supervisor = Supervisor([*([broker.NAME] if nats else []), *([mailsink.NAME] if sink else []), *PARTS],
                            pid_dir=settings.data_dir / PID_DIR)
    supervisor.trap()
    servers: list[Part] = []  # started before the parts, stopped after them
    parts: list[Part] = []
    try:
        if nats:
            servers.append(supervisor.run(broker.NAME, nats_argv, part_env()))
            if not await nats.until_ready(servers[-1], supervisor.stopping):
                raise NotReady(f"the NATS server on 127.0.0.1:{nats.port} did not start; see its log above (another "
                               "server on that port? SAGASHOP_NATS_PORT chooses another)")
        if sink:
            servers.append(supervisor.run(mailsink.NAME, sink.argv(), part_env()))
            if not await sink.until_ready(servers[-1], supervisor.stopping):
                raise NotReady(f"the SMTP sink on 127.0.0.1:{sink.port} did not start; see its log above (another "
                               "server on that port? SAGASHOP_SMTP_PORT chooses another)")
        parts = [supervisor.run(part, command(part), part_env(None, **env, **metrics_port(settings, part)))
                 for part in PARTS]
        url = f"http://127.0.0.1:{settings.gateway_port}"
        if not await until_ready(url, supervisor.stopping):
            raise NotReady(f"not ready after {READY_WITHIN:.0f}s; see the logs above")
        await seed(settings)
        banner(url, settings.admin_email, password, sink)
        await supervisor.stopping.wait()
    except NotReady as e:
        if not supervisor.stopping.is_set():  # else stopped while starting, as asked: no failure
            print(f"sagashop: {e}", file=sys.stderr)
            raise SystemExit(1) from None
    finally:
        await supervisor.stop(parts)
        await supervisor.stop(servers)


class NotReady(Exception):
    """Something `up` started did not become ready: it stops everything and exits with 1."""


def metrics_port(settings: Settings, part: str) -> dict[str, str]:
    return {"SAGASHOP_METRICS_PORT": str(settings.port(part) + METRICS_OFFSET)} if part in SERVICES else {}


def internal_secret(settings: Settings) -> str:
    """SAGASHOP_INTERNAL_SECRET, or a new one for this run, kept (readable by this user only) in the data directory,
    where the tools run beside the shop find it (Settings.caller_secret)."""
    if settings.internal_secret:
        return settings.internal_secret
    secret, path = secrets.token_urlsafe(32), settings.data_dir / INTERNAL_SECRET_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(secret)
    return secret


async def until_ready(url: str, stopping: asyncio.Event) -> bool:
    """Whether the gateway's /readyz (every backend's gRPC health) answers 200 within READY_WITHIN; False at once on
    `stopping`."""
    deadline = asyncio.get_running_loop().time() + READY_WITHIN
    async with ShopClient(url, timeout=2) as shop:
        while not stopping.is_set():
            if await shop.ready():
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.25)
    return False


async def seed(settings: Settings) -> None:
    """Adds the demo products that are missing; never touches stock an earlier run changed."""
    backends = Backends(settings, "sagashop-up", ("inventory",))
    inventory = backends.inventory
    try:
        for sku, name, price, stock in DEMO_CATALOG:
            product = inventory_pb2.Product(sku=sku, name=name, price_cents=price, currency="EUR", available=stock)
            await inventory.call(inventory.stub.UpsertProduct, inventory_pb2.UpsertProductRequest(
                product=product, only_if_absent=True), within=10)
    except DomainError as e:
        print(f"sagashop: seeding the catalog failed: {e}", file=sys.stderr)
    finally:
        await backends.close()


def banner(url: str, email: str, password: str, sink: LocalMailSink | None) -> None:
    mail = f"emails to customers: kept in {sink.dir}\n" if sink else ""
    print(f"\nsagashop is ready at {url}  (API docs: {url}/docs)\n"
          f"admin: {email} / {password}\n{mail}"
          f"Ctrl-C stops everything.\n", flush=True)
