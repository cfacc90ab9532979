"""Every program drill code runs through a runner, in one list, with the Debian package that provides it.

The machine a cluster's runner runs on must have each of them: the worker for ``runner.kind:
local`` (the container image: ``Dockerfile`` runs this file at build time, and
``tests/unit/test_dockerfile.py`` checks the list against the code and the Dockerfile's packages),
the database or backup host for ``ssh``. PostgreSQL's programs are looked up in the estate's
``postgres.bin_dir`` (Debian/PGDG layout by default), everything else on ``PATH``.

Standalone on purpose (standard library only): ``python3 commands.py [BIN_DIR]`` checks a machine
and exits 1 naming what is missing and the package to install.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

PG_BIN_DIR = "/usr/lib/postgresql/15/bin"  # the estate's default postgres.bin_dir


class Executable(NamedTuple):
    name: str
    in_bin_dir: bool  # True: under postgres.bin_dir; False: on PATH
    package: str  # Debian / PGDG package
    why: str


EXECUTABLES: tuple[Executable, ...] = (
    Executable("pgbackrest", False, "pgbackrest", "check, info, verify, repo-ls, restore, backup"),
    Executable("pg_ctl", True, "postgresql-15", "start, stop, status, kill of nodes and scratch servers"),
    Executable("postgres", True, "postgresql-15", "the server pg_ctl starts (the restore test's scratch server)"),
    Executable("pg_rewind", True, "postgresql-15", "the old primary back as a standby after a failover"),
    Executable("pg_controldata", True, "postgresql-15", "timeline and state of a stopped node"),
    Executable("ps", False, "procps", "whether a postmaster runs (a zombie does not)"),
    Executable("cat", False, "coreutils", "read a node's configuration files"),
    Executable("tee", False, "coreutils", "write a node's configuration files"),
    Executable("rm", False, "coreutils", "remove a stale postmaster.pid, pg_rewind's temporary passfile"),
    Executable("dd", False, "coreutils", "write a file on the runner's host (scratch tags, config files, a temporary "
               "passfile) through stdin: a password never in argv"),
    Executable("mv", False, "coreutils", "the atomic rename of a file written on the runner's host; a restored "
               "copy's own config files set aside (*.restored)"),
    Executable("ls", False, "coreutils", "list a scratch root on the runner's host"),
    Executable("mkdir", False, "coreutils", "create a scratch directory on the runner's host"),
    Executable("test", False, "coreutils", "whether a path exists on the runner's host"),
    Executable("mktemp", False, "coreutils", "pg_rewind's temporary passfile (mode 0600)"),
    Executable("stat", False, "coreutils", "free space of the scratch root before a restore (stat -f)"),
    Executable("runuser", False, "util-linux", "the local runner as runner.run_as when the worker runs as root"),
)
# Started by another program rather than by drill code: pg_ctl starts postgres from its own directory.
STARTED_INDIRECTLY = frozenset({"postgres"})
# What the local runner wraps commands in (drdrill.core.runner), rather than a command of its own.
RUNNER_WRAPPERS = frozenset({"runuser"})
# Debian's Essential packages: in every Debian image, never installed by hand.
ESSENTIAL = frozenset({"coreutils", "util-linux"})


def packages() -> set[str]:
    return {e.package for e in EXECUTABLES}


def missing(bin_dir: str | os.PathLike[str] = PG_BIN_DIR) -> list[str]:
    """What this machine lacks, one line each with the package that provides it."""
    out = []
    for e in EXECUTABLES:
        path = Path(bin_dir) / e.name if e.in_bin_dir else shutil.which(e.name)
        if not path or not os.access(path, os.X_OK):
            where = f"{bin_dir}/{e.name}" if e.in_bin_dir else f"{e.name} on PATH"
            out.append(f"{where} is missing ({e.why}): install the {e.package} package")
    return out


if __name__ == "__main__":
    lacking = missing(sys.argv[1] if len(sys.argv) > 1 else PG_BIN_DIR)
    for line in lacking:
        print(line, file=sys.stderr)
    print("every program the drills run is here" if not lacking else f"{len(lacking)} missing")
    sys.exit(1 if lacking else 0)
