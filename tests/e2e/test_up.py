"""`sagashop up` keeps the shop running: a part killed with SIGKILL is restarted and the shop is ready again; it runs
a NATS server of its own unless SAGASHOP_NATS_URL names one, and an SMTP sink of its own unless SAGASHOP_SMTP_URL
names one, gives them to every part, and stops them last."""

import asyncio
import os
import signal
import stat
from urllib.parse import urlsplit

import psutil
import pytest

from sagashop.kit.settings import PARTS
from tests.shop import start_shop, stop_shop, wait_ready
from tools.local.broker import jetstream_answers


@pytest.mark.parametrize("part", ["inventory", "orchestrator", "gateway"])
def test_a_killed_part_is_restarted_and_the_shop_serves_again(shop, part):
    victim = shop.part(part)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)

    shop.ready_again()
    assert shop.part(part).pid != victim.pid
    assert shop.place_order({shop.product(stock=2): 1})["status"] == "APPROVED"


def nats_servers(up_pid: int) -> list[psutil.Process]:
    return [child for child in psutil.Process(up_pid).children() if child.name() == "nats-server"]


def test_every_part_is_given_one_nats_server_with_jetstream(shop):
    """The SQLite-flavoured shop leaves SAGASHOP_NATS_URL unset (up runs its own); the PostgreSQL one names the
    machine's (up runs none)."""
    urls = {shop.part(part).environ().get("SAGASHOP_NATS_URL") for part in PARTS}
    assert urls == {shop.env["SAGASHOP_NATS_URL"]}
    url = urls.pop()
    assert asyncio.run(jetstream_answers(url))
    given, own = psutil.Process(shop.pid).environ().get("SAGASHOP_NATS_URL"), nats_servers(shop.pid)
    if given:
        assert (url, own) == (given, [])
    else:
        [server] = own
        assert {s.laddr.port for s in server.net_connections("tcp")} == {urlsplit(url).port}


def mail_sinks(up_pid: int) -> list[psutil.Process]:
    return [child for child in psutil.Process(up_pid).children() if "tools.local.mailsink" in child.cmdline()]


def listening(process: psutil.Process) -> list[tuple[str, int]]:
    return [s.laddr for s in process.net_connections("tcp") if s.status == psutil.CONN_LISTEN]


def test_every_part_is_given_the_smtp_sink_up_runs_on_loopback(shop):
    [sink] = mail_sinks(shop.pid)
    port = int(shop.env["SAGASHOP_SMTP_PORT"])
    assert listening(sink) == [("127.0.0.1", port)]
    assert {shop.part(part).environ().get("SAGASHOP_SMTP_URL") for part in PARTS} == {f"smtp://127.0.0.1:{port}"}


def test_up_runs_its_own_nats_and_smtp_sink_on_loopback_under_the_data_dir_and_stops_them(tmp_path):
    process, env, log = start_shop(tmp_path, None)
    try:
        wait_ready(f"http://127.0.0.1:{env['SAGASHOP_GATEWAY_PORT']}", process, log)
        [server] = nats_servers(process.pid)
        port = int(env["SAGASHOP_NATS_PORT"])
        assert listening(server) == [("127.0.0.1", port)]  # the client port only, no monitoring port, not on 0.0.0.0
        [sink] = mail_sinks(process.pid)
        [gateway] = [child for child in psutil.Process(process.pid).children() if child.cmdline()[-1] == "gateway"]
        url = gateway.environ()["SAGASHOP_NATS_URL"]
        assert urlsplit(url).port == port
        assert asyncio.run(jetstream_answers(url))
        assert not asyncio.run(jetstream_answers(f"nats://127.0.0.1:{port}"))  # a password is asked
        store = tmp_path / "data" / "nats"
        assert (store / "jetstream").is_dir()
        assert stat.S_IMODE((store / "nats.conf").stat().st_mode) == 0o600
        assert "Server is ready" in log.read_text()
    finally:
        stop_shop(process)
    assert process.returncode == 0
    assert not server.is_running() and not sink.is_running()
