"""Offline means offline: the suite's network guard (tests/conftest.py) and the runtime switches."""

from __future__ import annotations

import os
import socket

import pytest


def test_network_guard_refuses_and_records_outside_connections():
    import conftest

    before = len(conftest._net_attempts)
    with pytest.raises(ConnectionRefusedError, match="network access attempted"):
        socket.getaddrinfo("telemetry.example.invalid", 443)
    s = socket.socket()
    try:
        with pytest.raises(ConnectionRefusedError):
            s.connect(("192.0.2.1", 443))
    finally:
        s.close()
    assert len(conftest._net_attempts) == before + 2
    del conftest._net_attempts[before:]      # these two were on purpose


def test_loopback_stays_allowed():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=5)
    c.close()
    srv.close()


def test_set_offline_switches_off_hub_tracing_and_telemetry(monkeypatch):
    from backend.runtime import set_offline

    for var in ("HF_HUB_OFFLINE", "LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING", "ANONYMIZED_TELEMETRY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "true")
    set_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["LANGCHAIN_TRACING_V2"] == "false"
    assert os.environ["LANGSMITH_TRACING"] == "false"
    assert os.environ["ANONYMIZED_TELEMETRY"] == "False"
