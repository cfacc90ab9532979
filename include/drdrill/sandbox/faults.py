"""Faults the tests and benchmarks inject without harming the sandbox: a repo whose S3 endpoint is dead.

The sandbox's own moto cannot be stopped for long (gunicorn kills a stopped worker after 30 s and
moto's buckets live in memory), so a dead endpoint is a *copy* of the cluster's pgbackrest.conf
that points one repo at another port, and an estate file that names that copy:

- ``refused``: a loopback port nothing listens on (connection refused at once);
- ``hung``: `Blackhole`, a TCP server that accepts every connection and never sends a byte (the
  TLS handshake never completes), the way a wedged load balancer or a dropped route behaves.

WAL archiving keeps using the real pgbackrest.conf (``archive_command`` names it), so the primary
is unaffected; only the commands a drill runs with the copy meet the dead endpoint.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drdrill.core.estate import Cluster
from drdrill.sandbox.layout import write_as_postgres

MODES = ("refused", "hung")


class Blackhole(threading.Thread):
    """Accepts TCP connections on a loopback port and never answers; closes them all on `stop`."""

    def __init__(self) -> None:
        super().__init__(name="blackhole", daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stopping = False

    def run(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)  # held open, never read or written

    def stop(self) -> None:
        self._stopping = True
        # shutdown() wakes the accept() above; close() alone may leave it blocked
        for s in (self.sock, *self._conns):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on (taken from the kernel, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


@contextmanager
def dead_endpoint(mode: str) -> Iterator[tuple[int, Blackhole | None]]:
    """(port, blackhole or None) of a dead endpoint of the given mode, for as long as the block runs."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "refused":
        yield closed_port(), None
        return
    hole = Blackhole()
    hole.start()
    try:
        yield hole.port, hole
    finally:
        hole.stop()


def conf_with_repo_port(cluster: Cluster, repo: int, port: int, path: Path) -> Path:
    """Write ``path``: the cluster's pgbackrest.conf with ``repo``'s storage port set to ``port``.

    Readable by the postgres user only (it holds the same secrets as the original). The caller
    removes it.
    """
    cfg = cluster.pgbackrest.config
    if cfg is None:
        raise ValueError(f"cluster {cluster.name} names no pgbackrest.conf")
    text = cfg.read_text()
    line = f"repo{repo}-storage-port={port}"
    pattern = re.compile(rf"^repo{repo}-storage-port=.*$", re.M)
    text = pattern.sub(line, text) if pattern.search(text) else text.replace("[global]\n", f"[global]\n{line}\n", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_as_postgres(path, text, 0o600)
    return path


def estate_with_config(estate_text: str, old_config: str, new_config: Path, extra: dict[str, str] | None = None) -> str:
    """The estate file's text with the cluster's pgbackrest.conf replaced (and other literal replacements)."""
    if old_config not in estate_text:
        raise ValueError(f"{old_config!r} is not in the estate file")
    text = estate_text.replace(old_config, str(new_config))
    for old, new in (extra or {}).items():
        if old not in text:
            raise ValueError(f"{old!r} is not in the estate file")
        text = text.replace(old, new)
    return text
