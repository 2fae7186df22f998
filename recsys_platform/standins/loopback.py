"""Every stand-in listens on loopback only: each serves local data without checking credentials, so
nothing beyond this machine may reach it."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """`localhost`, or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_loopback(host: str, what: str, why: str = "it serves local data without checking credentials") -> None:
    if not is_loopback_host(host):
        raise ValueError(f"refusing to start {what} on {host!r}: {why}, so it binds to loopback only "
                         "(127.0.0.1, ::1 or localhost)")
