"""pgBackRest: the commands drills use for one stanza, run through a runner.

`PgBackRestHook` owns where pgBackRest runs (the runner) and which stanza and config it acts
on. It is built either from an Airflow connection of type ``pgbackrest`` (a user's own DAG:
login = the OS user to run as, extra = stanza, config, process_max) or from a cluster of the
estate (`PgBackRestHook.for_cluster`, what the drills do). Only argv lists are built here;
secrets (repo cipher passphrase, S3 keys) stay in the pgbackrest.conf on the database host and
are never passed on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from drdrill.core.errors import EstateError
from drdrill.core.estate import Cluster, RunnerSpec
from drdrill.core.hosts import is_this_machine
from drdrill.core.runner import CommandResult, LocalRunner, Runner, SSHRunner, runner_for

# Options that say where and how a command runs, not what it does: left out of messages.
_PLUMBING = ("--config=", "--stanza=", "--log-level-console=", "--pg1-")


class PgBackRestHook(BaseHook):
    """pgBackRest commands for one stanza.

    :param pgbackrest_conn_id: Airflow connection of type ``pgbackrest``: ``login`` is the OS user
        pgBackRest runs as (``postgres``), ``extra`` holds ``stanza``, ``config`` (the
        pgbackrest.conf path), ``process_max`` and ``ssh_conn_id`` (an Airflow SSH connection:
        pgBackRest then runs on that host through the SSH runner). Arguments given here win over it. Its form in
        the Airflow UI is declared in `drdrill.provider` (Airflow 3.3 reads it from there).
    :param stanza: the stanza name
    :param config: path of pgbackrest.conf where the command runs (holds the secrets)
    :param run_as: OS user to run as (default: the connection's login)
    :param process_max: parallel processes for restores
    :param pg1: options that point pg1 at the current primary (``path``, ``port``, ``socket_path``)
    :param runner: where commands run (default: this worker, as ``run_as``)

    Usage::

        hook = PgBackRestHook("pgbackrest_default")
        stanzas = hook.info(repo=1)      # parsed `pgbackrest info --output=json --repo=1`
        report, _ = hook.verify(repo=1)  # parsed `pgbackrest verify`
        hook.probe(2, timeout=3)         # does repo2's object store answer at all? (no pgBackRest involved)
    """

    conn_name_attr = "pgbackrest_conn_id"
    default_conn_name = "pgbackrest_default"
    conn_type = "pgbackrest"
    hook_name = "pgBackRest"

    def __init__(self, pgbackrest_conn_id: str | None = None, *, stanza: str | None = None,
                 config: str | Path | None = None, run_as: str | None = None, process_max: int | None = None,
                 pg1: dict[str, Any] | None = None, runner: Runner | None = None) -> None:
        super().__init__()
        self.pgbackrest_conn_id = pgbackrest_conn_id
        extra: dict[str, Any] = {}
        if pgbackrest_conn_id:
            conn = self.get_connection(pgbackrest_conn_id)
            extra = conn.extra_dejson
            ssh_conn_id = extra.get("ssh_conn_id")
            if conn.host and not ssh_conn_id and not is_this_machine(conn.host):
                raise EstateError(f"connection {pgbackrest_conn_id!r} names host {conn.host!r}: running pgBackRest "
                                  f"on another host needs the SSH runner: set ssh_conn_id (an Airflow SSH connection "
                                  f"to {conn.host}) in its extra, or leave host empty to run on the worker")
            run_as = run_as or conn.login or None
            if ssh_conn_id and runner is None:
                runner = SSHRunner(str(ssh_conn_id), run_as)
        self.stanza = stanza or extra.get("stanza")
        if not self.stanza:
            raise EstateError("pgBackRest needs a stanza: pass stanza=... or set 'stanza' in the extra of the "
                              f"pgbackrest connection {pgbackrest_conn_id or '(none given)'}")
        cfg = config or extra.get("config")
        self.config = Path(cfg) if cfg else None
        self.process_max = int(process_max or extra.get("process_max") or 2)
        self.pg1 = dict(pg1 or {})
        self.runner = runner or runner_for(RunnerSpec(kind="local", run_as=run_as))
        self._storage_config: Any = None

    @classmethod
    def for_cluster(cls, cluster: Cluster, runner: Runner | None = None) -> PgBackRestHook:
        """The hook for a cluster of the estate, with pg1 pointed at its current primary.

        Commands run through ``runner``, else the cluster's backup runner (``pgbackrest.runner``, else
        the current primary's runner: `Cluster.backup_runner`).
        """
        p = cluster.primary
        pg1: dict[str, Any] = {"port": p.port}
        if p.data_dir:
            pg1["path"] = p.data_dir
        if p.socket_dir:
            pg1["socket_path"] = p.socket_dir
        # The DR node (a region failover made it primary) archives through the DR host's own config.
        dr = cluster.dr
        config = dr.pgbackrest_config if dr is not None and p.name == dr.node.name else cluster.pgbackrest.config
        return cls(stanza=cluster.pgbackrest.stanza, config=config,
                   process_max=cluster.pgbackrest.process_max, pg1=pg1,
                   runner=runner or runner_for(cluster.backup_runner))

    def get_conn(self) -> Runner:
        """The runner commands go through (this hook's "client")."""
        return self.runner

    def argv(self, command: str, *options: str, console: str = "warn") -> list[str]:
        base = ["pgbackrest", f"--stanza={self.stanza}"]
        if self.config:
            base.insert(1, f"--config={self.config}")
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
        names = {"port": "--pg1-port", "path": "--pg1-path", "socket_path": "--pg1-socket-path"}
        return [f"{names[k]}={v}" for k, v in self.pg1.items() if k in names and v]

    def check(self, *, timeout: float = 120) -> CommandResult:
        """Archive round trip on every repo: WAL switch, push, and find it in each repo."""
        return self.run("check", *self.primary_options(), timeout=timeout, check=False)

    def info(self, repo: int | None = None, *, timeout: float = 120):
        """Parsed ``info --output=json``: of one repo with ``repo`` (never waits on another repo), else of all."""
        from drdrill.hooks.pgbackrest_models import parse_info

        res = self.run("info", "--output=json", *([f"--repo={repo}"] if repo is not None else []), timeout=timeout)
        return parse_info(res.stdout)

    def archive_files(self, repo: int, *, timeout: float = 300) -> list[str]:
        """Every file under the stanza's WAL archive in ``repo`` (``repo-ls --recurse``), relative paths."""
        import json

        # repo-ls takes the path after the command; it lists names only (never file contents)
        argv = [*self.argv("repo-ls", f"--repo={repo}", "--recurse", "--output=json"), f"archive/{self.stanza}"]
        res = self.runner.run(argv, timeout=timeout)
        return [name for name, item in json.loads(res.stdout or "{}").items() if item.get("type") == "file"]

    def verify(self, repo: int, *, timeout: float = 3600):
        from drdrill.hooks.pgbackrest_models import parse_verify

        # verify exits 0 even when it finds corruption: the text is the only truth.
        res = self.run("verify", f"--repo={repo}", "--output=text", "--verbose", timeout=timeout, check=False)
        return parse_verify(res.stdout + res.stderr, repo_key=repo), res

    def backup(self, *, repo: int, type: str = "full") -> CommandResult:
        return self.run("backup", *self.primary_options(), f"--repo={repo}", f"--type={type}", timeout=7200,
                        progress=True)

    def restore(self, *, repo: int, pg_path: Path, target_time: str | None = None,
                process_max: int | None = None, check: bool = True,
                target_timeline: str | int | None = None) -> CommandResult:
        """Restore into ``pg_path`` as an isolated copy: it never archives into the stanza.

        ``target_timeline``: recover along this timeline (the primary's); default PostgreSQL's ``latest``, which
        follows the newest timeline in the repo, an abandoned promotion's branch included."""
        opts = [f"--repo={repo}", f"--pg1-path={pg_path}", "--delta", "--archive-mode=off",
                f"--process-max={process_max or self.process_max}"]
        if target_time:
            opts += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        if target_timeline not in (None, ""):
            opts.append(f"--target-timeline={target_timeline}")
        return self.run("restore", *opts, timeout=7200, progress=True, check=check)

    # ---------------------------------------------------------------- the repos' storage
    @staticmethod
    def command_line(argv: list[str]) -> str:
        """A pgBackRest argv as messages show it: the command, then its own options (``pgbackrest info --repo=2``)."""
        own = [a for a in argv[1:] if not a.startswith(_PLUMBING)]
        command = next((a for a in own if not a.startswith("-")), "")
        return " ".join([argv[0], command, *(a for a in own if a != command)]).strip()

    def storage_config(self):
        """pgbackrest.conf as pgBackRest resolves it (`drdrill.hooks.pgbackrest_storage`), read once.

        Only where pgBackRest runs on this worker (the local runner): elsewhere the file is on
        another host. Raises `EstateError` for another runner, `OSError` when it cannot be read.
        """
        from drdrill.hooks.pgbackrest_storage import read_config

        if not isinstance(self.runner, LocalRunner):
            raise EstateError(f"pgBackRest runs through {type(self.runner).__name__}: its pgbackrest.conf is not on "
                              f"this worker")
        if self._storage_config is None:
            self._storage_config = read_config(self.config)
        return self._storage_config

    def configured_repos(self) -> list[int]:
        """The repos pgbackrest.conf defines for the stanza (repo1 when it names none)."""
        return self.storage_config().repo_indexes(self.stanza)

    def repo_storage(self, repo: int):
        """Where ``repo`` lives (type, endpoint host and port, bucket), from pgbackrest.conf."""
        from drdrill.hooks.pgbackrest_storage import repo_storage

        return repo_storage(self.storage_config(), self.stanza, repo)

    def probe(self, repo: int, *, timeout: float = 3):
        """Whether a remote repo's endpoint answers one cheap request within ``timeout`` seconds.

        No pgBackRest command and no credential: an unsigned request through boto3 for S3 (see
        `drdrill.hooks.pgbackrest_storage.probe`). Returns a `Probe`.
        """
        from drdrill.hooks.pgbackrest_storage import probe

        return probe(self.repo_storage(repo), timeout)
