"""The sandbox's pgBackRest: its configuration and secrets, the stanza and the backups in it.

Owns ``pgbackrest.conf`` (repo1 posix under the sandbox, repo2 S3 in moto's bucket over TLS
with repo cipher aes-256-cbc; written with generated secrets, mode 0640 for the postgres user)
and the commands the bring-up runs through `PgBackRestHook`: stanza-create, check, a full and
a diff backup per repo. pgBackRest is no server: it runs as the postgres user when called.
"""

from __future__ import annotations

import logging
import shutil
import time

from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster
from drdrill.core.runner import LocalRunner
from drdrill.hooks.pgbackrest import PgBackRestHook
from drdrill.sandbox.aws import BUCKET, REGION
from drdrill.sandbox.layout import PG_USER, Layout, write_as_postgres

log = logging.getLogger("drdrill.sandbox")


class PgBackRestRepos:
    """The cluster's stanza and its two repos, as the sandbox sets them up."""

    def __init__(self, cluster: Cluster, layout: Layout, s3_port: int) -> None:
        self.cluster = cluster
        self.layout = layout
        self.s3_port = s3_port

    def write_conf(self) -> None:
        cfg = self.cluster.pgbackrest.config
        assert cfg is not None
        write_as_postgres(cfg, self.conf_text(), 0o640)
        dr = self.cluster.dr
        if dr is not None:  # the DR region's own config: its repo only, pg1 = the DR node
            write_as_postgres(dr.pgbackrest_config, self.conf_text(repos=[self.cluster.dr_repo], dr=True), 0o640)
            for name in ("dr-log", "dr-lock", "dr-spool"):  # the DR site's own directories (another host)
                d = self.layout.backrest / name
                d.mkdir(parents=True, exist_ok=True)
                shutil.chown(d, PG_USER, PG_USER)

    def conf_text(self, repos: list[int | None] | None = None, *, dr: bool = False) -> str:
        """pgbackrest.conf: every repo, or only ``repos`` (the DR site's, which must not know repo1)."""
        L = self.layout
        primary = self.cluster.dr_node if dr else self.cluster.primary
        assert primary is not None
        keep = set(repos) if repos else {1, 2}
        lines = [
            "# Written by drdrill's sandbox. Holds secrets: mode 0640, owner postgres, never in git.",
            "[global]",
            *([f"repo1-path={L.backrest / 'repo1'}", "repo1-retention-full=2"] if 1 in keep else []),
        ]
        if 2 in keep:
            lines += [
                "repo2-type=s3",
                f"repo2-s3-bucket={BUCKET}",
                "repo2-s3-endpoint=localhost",
                f"repo2-storage-port={self.s3_port}",
                f"repo2-s3-region={REGION}",
                "repo2-s3-uri-style=path",
                f"repo2-storage-ca-file={L.ca}",
                f"repo2-s3-key={L.secret('s3-key')}",
                f"repo2-s3-key-secret={L.secret('s3-key-secret')}",
                "repo2-path=/pgbackrest",
                "repo2-retention-full=2",
                "repo2-cipher-type=aes-256-cbc",
                f"repo2-cipher-pass={L.secret('repo2-cipher-pass')}",
            ]
        lines += [
            "compress-type=lz4",
            f"process-max={self.cluster.pgbackrest.process_max}",
            "start-fast=y",
            # the DR site is another host: its own log, lock and spool directories
            f"log-path={L.backrest / ('dr-log' if dr else 'log')}",
            f"lock-path={L.backrest / ('dr-lock' if dr else 'lock')}",
            f"spool-path={L.backrest / ('dr-spool' if dr else 'spool')}",
            "log-level-file=info",
            "io-timeout=20",
            "",
            f"[{self.cluster.pgbackrest.stanza}]",
            f"pg1-path={primary.data_dir}",
            f"pg1-port={primary.port}",
            f"pg1-socket-path={primary.socket_dir}",
            # pgBackRest connects over the local socket as the superuser (peer), not as the drills' role
            f"pg1-user={PG_USER}",
            "",
        ]
        return "\n".join(lines)

    def hook(self, runner: LocalRunner) -> PgBackRestHook:
        return PgBackRestHook.for_cluster(self.cluster, runner)

    def full_backups(self, br: PgBackRestHook) -> None:
        """A full backup to each repo in turn (repo2's goes to moto over TLS), each timed in the log."""
        for repo in self.cluster.pgbackrest.repos:
            t = time.monotonic()
            br.backup(repo=repo.index, type="full")
            log.info("full backup to repo%s in %.1fs", repo.index, time.monotonic() - t)

    def diff_backups(self, br: PgBackRestHook) -> None:
        for repo in self.cluster.pgbackrest.repos:
            br.backup(repo=repo.index, type="diff")

    # ---------------------------------------------------------------- health
    def problems(self) -> list[str]:
        cfg = self.cluster.pgbackrest.config
        return [] if cfg and cfg.exists() else ["no pgbackrest.conf"]

    def backups(self) -> list[dict]:
        """Every backup in every repo, from ``pgbackrest info`` (an error row when it fails)."""
        out: list[dict] = []
        try:
            for st in PgBackRestHook.for_cluster(self.cluster).info():
                for b in st.backups:
                    out.append({"repo": b.repo_key, "label": b.label, "type": b.type,
                                "stop": b.stop.isoformat(timespec="seconds")})
        except DrillError as e:
            out.append({"error": str(e)})
        return out
