"""Whether a host named in the estate is this machine (where the ``local`` runner runs commands).

A ``local`` runner runs ``pg_ctl``, ``pg_rewind`` and ``pgbackrest`` on the worker's own disk
against ``node.data_dir``: for a node on another host it would act on the wrong server (on a
worker that is the standby's host, "kill the primary" would kill the local standby). So the
estate refuses ``kind: local`` for a node whose host is not this machine.

This machine is: a loopback name or address, this machine's hostname or FQDN, or any address
this machine can bind to (an address is this machine's exactly when a socket can bind it).
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _bindable(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
    except OSError:
        return False
    return True


def _is_local_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified or _bindable(str(ip))


@lru_cache(maxsize=256)
def is_this_machine(host: str) -> bool:
    """True when ``host`` (a name or an address) is this machine. Names are resolved once (cached)."""
    h = host.strip().strip("[]").rstrip(".").lower()
    if not h:
        return False
    if h in _LOOPBACK_NAMES:
        return True
    try:
        ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return _is_local_address(h)
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    if h in names:
        return True
    try:
        infos = socket.getaddrinfo(h, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False  # a name that does not resolve here is not this machine
    addresses = {i[4][0] for i in infos}
    return bool(addresses) and all(_is_local_address(a) for a in addresses)
