"""The ports a shop's parts are started on: free, distinct, and never ones the kernel may give an outgoing
connection in the meantime (a part's bind failing on a port a database connection had taken stopped whole shops)."""

import socket

import pytest

from tools.local import parts
from tools.local.parts import ephemeral_range, free_ports


def test_ports_are_distinct_bindable_and_outside_the_range_outgoing_connections_use():
    ports = free_ports(12)
    assert len(set(ports)) == 12
    assert not set(ports) & set(ephemeral_range())
    held = []
    try:
        for port in ports:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", port))  # raises if it was not free
    finally:
        for s in held:
            s.close()


def test_a_port_something_listens_on_is_never_handed_out(monkeypatch):
    taken, free = sorted(free_ports(2))
    monkeypatch.setattr(parts, "LISTEN_PORTS", [taken, free])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        assert [free_ports(1) for _ in range(20)] == [[free]] * 20
        with pytest.raises(OSError, match="fewer than 2 free ports"):
            free_ports(2)
