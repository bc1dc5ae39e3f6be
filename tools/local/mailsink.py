"""The SMTP sink `sagashop up` runs when SAGASHOP_SMTP_URL is unset: it accepts every message on 127.0.0.1 and
keeps it as `<data dir>/mail/<message-id>.eml`. A message sent again with the same Message-ID (a notification whose
transaction failed after the send) replaces the first: each is kept once. Run as `python -m tools.local.mailsink
PORT DIRECTORY`, a process of its own under up's supervisor."""

import asyncio
import hashlib
import os
import re
import signal
import sys
import uuid
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from .broker import listens
from .supervisor import Part

NAME = "mail"  # its log lines' prefix
STORE = "mail"  # in the data directory
MAX_MESSAGE_BYTES = 1 << 20  # a larger message is refused (552), not kept
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,199}")  # a Message-ID usable as a file name as it is
READY_WITHIN = 30.0


def file_name(content: bytes) -> str:
    """`<message-id>.eml`; a Message-ID that is no safe file name (or none) is named by its hash (or the content's)."""
    headers = BytesHeaderParser().parsebytes(content)  # compat32: a fifth of the default policy's CPU
    message_id = str(headers.get("Message-ID", "")).strip().removeprefix("<").removesuffix(">")
    if SAFE_ID.fullmatch(message_id):
        return f"{message_id}.eml"
    return hashlib.sha256(message_id.encode() if message_id else content).hexdigest() + ".eml"


class Keeper:
    """The aiosmtpd handler: each message's bytes, as received, in a file of its own under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        await asyncio.to_thread(self.keep, content)
        return "250 Message accepted for delivery"

    def keep(self, content: bytes) -> None:
        path = self.directory / file_name(content)
        part = path.with_name(f".{path.name}.{uuid.uuid4().hex}")  # whole or not at all: renamed once written
        part.write_bytes(content)
        os.replace(part, path)


class LocalMailSink:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.dir, self.port = data_dir.resolve() / STORE, port
        self.url = f"smtp://127.0.0.1:{port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "tools.local.mailsink", str(self.port), str(self.dir)]

    async def until_ready(self, sink: Part, stopping: asyncio.Event) -> bool:
        """Whether `sink` (this one, running) listens within READY_WITHIN; False at once on `stopping` or when it
        exited (a port taken: its log says)."""
        deadline = asyncio.get_running_loop().time() + READY_WITHIN
        while not stopping.is_set() and not sink.restarts:
            if sink.process and listens(sink.process.pid, self.port):
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)
        return False


async def serve(port: int, directory: Path) -> None:
    """Accepts mail on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    keeper = Keeper(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(keeper, hostname="sagashop-mailsink", data_size_limit=MAX_MESSAGE_BYTES), "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"SMTP sink listening on 127.0.0.1:{port}, keeping each message in {directory}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
