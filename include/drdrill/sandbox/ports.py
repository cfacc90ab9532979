"""The loopback ports of every sandbox server: kept out of the ephemeral range, checked free.

Owns no server; the orchestrator asks it before anything starts, with the ports of all of them.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

log = logging.getLogger("drdrill.sandbox")

RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def reserve(ports: list[int], scratch_range: tuple[int, int]) -> None:
    """Keep the sandbox's ports out of the kernel's ephemeral range.

    Every sandbox port (55xxx) lies inside Linux's default ephemeral range (32768-60999).
    Under the failover drill's connection churn (a canary write every 100 ms, a new
    connection each) an outgoing connection can be given local port 55432 while pg1 is
    down, and pg1 then cannot restart ("Address already in use"). Listing the ports in
    ``net.ipv4.ip_local_reserved_ports`` stops that; it needs root, as the sandbox does.
    """
    lo, hi = scratch_range
    wanted = sorted(set(ports))
    try:
        current = [x for x in RESERVED_PORTS.read_text().strip().split(",") if x]
        add = [str(p) for p in wanted if str(p) not in current] + ([f"{lo}-{hi}"] if f"{lo}-{hi}" not in current
                                                                   else [])
        if add:
            RESERVED_PORTS.write_text(",".join(current + add))
            log.info("reserved ports %s (net.ipv4.ip_local_reserved_ports): outgoing connections will not "
                     "take them", ",".join(add))
    except OSError as e:
        log.warning("could not reserve the sandbox ports from the ephemeral range (%s); a server restarted "
                    "under heavy connection churn may find its port taken", e)


def in_use(port: int) -> bool:
    """Something listens on (or holds) ``port`` on 127.0.0.1."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
