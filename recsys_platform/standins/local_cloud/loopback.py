"""Every stand-in of the local cloud listens on loopback only: they serve local data without checking
credentials, and nothing beyond this machine should reach them."""

from __future__ import annotations

import ipaddress


def check_loopback(host: str, what: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to start {what} on {host!r}: the local cloud binds to loopback only "
                         "(127.0.0.1, ::1 or localhost)")
