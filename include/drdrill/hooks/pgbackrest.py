"""pgBackRest commands for one cluster's stanza, run through the cluster's runner.

Only argv lists are built here; secrets (repo cipher passphrase, S3 keys) stay in the
pgbackrest.conf on the database host and are never passed on the command line.
"""

from __future__ import annotations

from pathlib import Path

from drdrill.core.estate import Cluster
from drdrill.core.runner import CommandResult, Runner, runner_for


class PgBackRest:
    """The pgBackRest commands drills use, for one cluster."""

    def __init__(self, cluster: Cluster, runner: Runner | None = None) -> None:
        self.cluster = cluster
        self.runner = runner or runner_for(cluster.runner)

    def argv(self, command: str, *options: str, console: str = "warn") -> list[str]:
        cfg = self.cluster.pgbackrest.config
        base = ["pgbackrest", f"--stanza={self.cluster.pgbackrest.stanza}"]
        if cfg:
            base.insert(1, f"--config={cfg}")
        return [*base, f"--log-level-console={console}", *options, command]

    def run(self, command: str, *options: str, timeout: float = 1800, check: bool = True,
            progress: bool = False) -> CommandResult:
        """Run a command; ``progress`` logs pgBackRest's info lines as they come (long operations)."""
        return self.runner.run(self.argv(command, *options, console="info" if progress else "warn"),
                               timeout=timeout, check=check, stream=progress)

    def primary_options(self) -> list[str]:
        """Point pg1 at the current primary (it changes with failovers; see `drdrill.core.topology`).

        Commands that connect to the database (check, backup) need them; pgbackrest.conf on a
        host that was built as standby would otherwise name the wrong server or none.
        """
        p = self.cluster.primary
        opts = [f"--pg1-port={p.port}"]
        if p.data_dir:
            opts.append(f"--pg1-path={p.data_dir}")
        if p.socket_dir:
            opts.append(f"--pg1-socket-path={p.socket_dir}")
        return opts

    def check(self, *, timeout: float = 120) -> CommandResult:
        """Archive round trip on every repo: WAL switch, push, and find it in each repo."""
        return self.run("check", *self.primary_options(), timeout=timeout, check=False)

    def info(self):
        from drdrill.hooks.pgbackrest_models import parse_info

        res = self.run("info", "--output=json", timeout=120)
        return parse_info(res.stdout)

    def verify(self, repo: int):
        from drdrill.hooks.pgbackrest_models import parse_verify

        # verify exits 0 even when it finds corruption: the text is the only truth.
        res = self.run("verify", f"--repo={repo}", "--output=text", "--verbose", timeout=3600, check=False)
        return parse_verify(res.stdout + res.stderr, repo_key=repo), res

    def backup(self, *, repo: int, type: str = "full") -> CommandResult:
        return self.run("backup", *self.primary_options(), f"--repo={repo}", f"--type={type}", timeout=7200,
                        progress=True)

    def restore(self, *, repo: int, pg_path: Path, target_time: str | None = None,
                process_max: int | None = None, check: bool = True) -> CommandResult:
        """Restore into ``pg_path`` as an isolated copy: it never archives into the stanza."""
        opts = [f"--repo={repo}", f"--pg1-path={pg_path}", "--delta", "--archive-mode=off",
                f"--process-max={process_max or self.cluster.pgbackrest.process_max}"]
        if target_time:
            opts += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        return self.run("restore", *opts, timeout=7200, progress=True, check=check)
