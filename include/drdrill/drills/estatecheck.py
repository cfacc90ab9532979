"""Checking an estate before trusting it: the file first, then, read-only, everything it names.

``python -m drdrill estate check [FILE]`` prints one line per check and exits 1 when any fails;
every drill runs the same checks as its first task (`drdrill.operators.estate.EstateCheckOperator`)
for the clusters it acts on. Nothing here writes anywhere: a login, ``SELECT``s, ``pgbackrest
info``/``version`` through the cluster's runner, an unsigned request to each object store, and
Route53 reads.

Every failed check says what was found and the fix (``Fix: ...``, also in ``details["fix"]``):
a wrong password names the connection to correct, an unreachable host the address and port, a
missing grant the ``GRANT`` statement.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillError, EstateError
from drdrill.core.estate import Cluster, Estate, Node, load_estate

log = logging.getLogger(__name__)

# A check that cannot even be asked (an import, a driver) must not stop the others.
_ASKING_FAILED = (DrillError, OSError, ValueError, RuntimeError, LookupError)


def _fail(name: str, target: str, message: str, fix: str, **details: Any) -> CheckResult:
    return CheckResult(name, Status.FAIL, f"{message}. Fix: {fix}", target, details={**details, "fix": fix})


def _pass(name: str, target: str, message: str, **details: Any) -> CheckResult:
    return CheckResult(name, Status.PASS, message, target, details=details)


# ------------------------------------------------------------------------------------ connections
_CONN_HINT = {
    "postgres": "--conn-type postgres --conn-login drdrill --conn-password '<password>' "
                "[--conn-extra '{\"sslmode\": \"verify-full\", \"sslrootcert\": \"/path/ca.crt\"}']",
    "aws": "--conn-type aws [--conn-extra '{\"region_name\": \"us-east-1\"}'] (or rely on the worker's IAM role)",
    "ssh": "--conn-type ssh --conn-host <db host> --conn-login postgres --conn-extra '{\"key_file\": \"/path/id\"}'",
    "smtp": "--conn-type smtp --conn-host <smtp host> --conn-port 587",
    "slack": "--conn-type slackwebhook --conn-password '<webhook token>'",
    "pagerduty": "--conn-type pagerduty_events --conn-password '<Events API v2 routing key>'",
    "kubernetes": "--conn-type kubernetes --conn-extra '{\"kube_config_path\": \"/path/kubeconfig\"}' "
                  "(or '{\"in_cluster\": true}')",
}
# The providers' default connections: when one is not defined, the provider's hook uses the worker's own
# credentials instead (it only logs a warning), so its absence is reported, not failed. A connection id
# the estate spells out otherwise must exist: a misspelt one would silently run with the worker's own.
_PROVIDER_DEFAULTS = {
    "aws_default": "the AWS hooks then use this worker's own credentials (instance or pod role, environment, "
                   "~/.aws): make sure they are the estate's account",
    "kubernetes_default": "the Kubernetes hook then uses this worker's in-cluster service account or "
                          "~/.kube/config: make sure it is the estate's cluster",
}
# Which drills use each kind of the estate's `backups:` (the daily verification checks every one).
BACKUP_DRILLS = {
    "velero": ("dr_daily_verification", "dr_monthly_velero_restore_test"),
    "aws_backup": ("dr_daily_verification", "dr_monthly_aws_backup_restore_test"),
    "object_lock": ("dr_daily_verification",),
}


def connection_ids(estate: Estate, clusters: list[Cluster], drill: str | None = None) -> list[tuple[str, str, str]]:
    """Every Airflow connection the estate names for ``clusters`` (and the ``notifications:`` channels of
    ``drill``, of any drill without one): (conn_id, type, where it is named)."""
    out: list[tuple[str, str, str]] = []
    for kind in ("smtp", "slack", "pagerduty"):
        ch = getattr(estate.notifications, kind)
        if ch is not None and (drill is None or ch.drills is None or drill in ch.drills):
            out.append((ch.conn_id, kind, f"notifications.{kind}"))
    for store, label in ((estate.journal, "journal"), (estate.state_store, "state")):
        if store.conn_id:
            out.append((store.conn_id, "aws", label))
    out += _backup_connection_ids(estate, clusters, drill)
    out += _service_connection_ids(estate, drill)
    for c in clusters:
        if c.postgres.conn_id:
            out.append((c.postgres.conn_id, "postgres", f"clusters[{c.name}].postgres"))
        for n in c.nodes:
            if n.conn_id:
                out.append((n.conn_id, "postgres", f"clusters[{c.name}].nodes[{n.name}]"))
        for runner, where in _runners(c):
            if runner.kind == "ssh" and runner.ssh_conn_id:
                out.append((runner.ssh_conn_id, "ssh", where))
        if c.failover:
            if c.failover.dns:
                out.append((c.failover.dns.conn_id, "aws", f"clusters[{c.name}].failover.dns"))
            for i, n in enumerate(c.failover.notify):
                if n.conn_id:
                    out.append((n.conn_id, n.kind, f"clusters[{c.name}].failover.notify[{i}]"))
    seen: set[str] = set()
    return [t for t in out if not (t[0] in seen or seen.add(t[0]))]


def _backup_connection_ids(estate: Estate, clusters: list[Cluster], drill: str | None) -> list[tuple[str, str, str]]:
    """The connections of the estate's ``backups:`` entries that ``drill`` uses (all without one), for the
    entries that hold a copy of one of ``clusters`` or name no cluster (``copies`` empty)."""
    names = {c.name for c in clusters}
    out: list[tuple[str, str, str]] = []
    for kind, drills in BACKUP_DRILLS.items():
        if drill is not None and drill not in drills:
            continue
        for e in getattr(estate.backups, kind):
            if e.copies and not (names and any(c.cluster in names for c in e.copies)):
                continue
            where = f"backups.{kind}[{e.name}]"
            out.append((e.conn_id, "kubernetes" if kind == "velero" else "aws", where))
            rt = getattr(e, "restore_test", None)
            if kind == "aws_backup" and rt is not None and rt.conn_id:
                out.append((rt.conn_id, "postgres", f"{where}.restore_test"))
    return out


def _service_connection_ids(estate: Estate, drill: str | None) -> list[tuple[str, str, str]]:
    """The connections of the ``services:`` the chaos drill ``drill`` may act on (all services without one):
    the pod kill's Kubernetes or SSH host, the AZ failure's FIS account, the probe's CloudWatch alarm."""
    out: list[tuple[str, str, str]] = []
    for svc in estate.services:
        if drill is not None and drill not in svc.allowed_drills:
            continue
        where = f"services[{svc.name}]"
        if svc.process and svc.process.runner == "ssh" and svc.process.ssh_conn_id:
            out.append((svc.process.ssh_conn_id, "ssh", f"{where}.process"))
        if svc.kubernetes and drill in (None, "dr_weekly_pod_kill"):
            out.append((svc.kubernetes.conn_id, "kubernetes", f"{where}.kubernetes"))
        if svc.az_failure and svc.az_failure.fis and drill in (None, "dr_monthly_az_failure"):
            out.append((svc.az_failure.fis.conn_id, "aws", f"{where}.az_failure.fis"))
        if svc.probe.alarm:
            out.append((svc.probe.alarm.conn_id, "aws", f"{where}.probe.alarm"))
    return out


def _runners(c: Cluster) -> list[tuple[Any, str]]:
    """The cluster's runner, the backup host's and each node's own (when the estate names them)."""
    out = [(c.runner, f"clusters[{c.name}].runner")]
    if c.pgbackrest.runner is not None:
        out.append((c.pgbackrest.runner, f"clusters[{c.name}].pgbackrest.runner"))
    for n in c.nodes:
        if n.runner is not None:
            out.append((n.runner, f"clusters[{c.name}].nodes[{n.name}].runner"))
    return out


def check_connection(conn_id: str, kind: str, where: str) -> CheckResult:
    """Is the Airflow connection ``conn_id`` defined where this process looks (env, secrets, metadata DB)?"""
    from airflow.sdk import BaseHook

    target = f"connection {conn_id}"
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as e:  # noqa: BLE001 - AirflowNotFoundException and the secrets backends' own errors
        if type(e).__name__ != "AirflowNotFoundException" and "isn't defined" not in str(e):
            return _fail("connection", target, f"{where} names connection {conn_id!r}, which could not be read "
                         f"({type(e).__name__}: {e})", "check the secrets backend this Airflow component uses")
        if conn_id in _PROVIDER_DEFAULTS:
            return CheckResult("connection", Status.SKIP, f"{where} names connection {conn_id!r}, which is not "
                               f"defined: {_PROVIDER_DEFAULTS[conn_id]}", target, details={"conn_id": conn_id})
        hint = _CONN_HINT.get(kind, f"--conn-type {kind}")
        return _fail("connection", target, f"{where} names connection {conn_id!r}, which is not defined",
                     f"airflow connections add {conn_id} {hint} (or AIRFLOW_CONN_{conn_id.upper()} on every "
                     f"Airflow component)", conn_id=conn_id)
    return _pass("connection", target, f"{conn_id!r} ({conn.conn_type}) is defined, named by {where}",
                 conn_id=conn_id, conn_type=conn.conn_type)


# ------------------------------------------------------------------------------------ PostgreSQL
_LOGIN_SQL = """
SELECT current_user, r.rolsuper, current_setting('server_version'), pg_is_in_recovery(),
       coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)
FROM pg_roles r WHERE r.rolname = current_user
"""


def check_node(cluster: Cluster, node: Node, *, down_ok: bool = False, deep: bool = True) -> list[CheckResult]:
    """Login as the drills log in, the drills' privileges, and (``deep``) the node's role against the estate."""
    from drdrill.core.pgerrors import REFUSED_US
    from drdrill.hooks import postgres as pg

    target = f"{cluster.name}/{node.name}"
    hook = pg.hook(cluster, node.host, node.port)
    conn_id = node.conn_id or cluster.postgres.conn_id
    who = f"connection {conn_id!r}" if conn_id else f"user {cluster.postgres.user!r} with no connection"
    ok, why = hook.is_ready()
    if not ok:
        if why.startswith(REFUSED_US):
            return [_fail("postgres_login", target, f"{node.host}:{node.port} is up but {why.removeprefix(REFUSED_US)}"
                          f" ({who})", _refusal_fix(why, conn_id, cluster, node), reason=why)]
        if down_ok:
            return [CheckResult("postgres_login", Status.SKIP, f"{node.host}:{node.port} does not answer ({why}); "
                                "the runbook's own health checks judge a node that is down", target)]
        return [_fail("postgres_login", target, f"{node.host}:{node.port} does not answer: {why}",
                      f"check that {node.name} runs and listens on {node.host}:{node.port} (listen_addresses, "
                      f"port, firewall, security group) and that the estate's host and port are right",
                      reason=why)]
    with hook.session(read_only=True) as c:
        user, superuser, version, in_recovery, ssl = pg.query_one(c, _LOGIN_SQL)
        out = [_pass("postgres_login", target, f"logged in to {node.host}:{node.port} as {user!r} "
                     f"(PostgreSQL {version}{', TLS' if ssl else ''}{', superuser' if superuser else ''})",
                     user=user, superuser=bool(superuser), version=version, ssl=bool(ssl))]
        actual = "standby" if in_recovery else "primary"
        if deep and actual != node.role:
            out.append(_fail("node_role", target, f"the estate (with the recorded topology) says {node.name} is "
                             f"{node.role}, but the server is a {actual}",
                             "find out who changed the roles outside drdrill; then correct the estate file or run "
                             "the failover runbook so the recorded topology matches", expected=node.role,
                             actual=actual))
        elif deep:
            out.append(_pass("node_role", target, f"{node.name} is {actual}, as the estate says"))
        missing = _missing(c, bool(superuser), schema=True)
    if not superuser and cluster.postgres.database != "postgres":
        # Function grants are per database: promote, pg_rewind and node actions connect to postgres.
        with pg.hook(cluster, node.host, node.port, "postgres").session(read_only=True) as c:
            missing += [(f"{what} in database postgres", fix) for what, fix in _missing(c, False, schema=False)
                        if (what, fix) not in missing]
    out += _privileges(target, user, bool(superuser), node, missing)
    return out


def _refusal_fix(why: str, conn_id: str | None, cluster: Cluster, node: Node) -> str:
    low = why.lower()
    if "authentication" in low or "password" in low:
        return (f"correct the login and password of Airflow connection {conn_id!r}" if conn_id else
                f"set clusters[{cluster.name}].postgres.conn_id to an Airflow Postgres connection holding "
                f"the drills' login and password")
    if "pg_hba" in low or "no pg_hba.conf entry" in low:
        return (f"add a pg_hba.conf line on {node.name} for the drills' role from the Airflow workers' "
                f"addresses (scram-sha-256, hostssl where TLS is required) and reload")
    if "ssl" in low or "certificate" in low:
        return (f"check the sslmode/sslrootcert extras of connection {conn_id!r} against {node.name}'s "
                f"certificate (its CA and its host name {node.host})")
    if "too many connections" in low:
        return f"raise max_connections on {node.name} or free connections (look at pg_stat_activity)"
    return "read the server's message above and its log"


def _missing(conn: Any, superuser: bool, *, schema: bool) -> list[tuple[str, str]]:
    from drdrill.core import privileges

    return [] if superuser else privileges.missing_privileges(conn, schema=schema)


def _privileges(target: str, user: str, superuser: bool, node: Node,
                missing: list[tuple[str, str]]) -> list[CheckResult]:
    """The grants the drills need (`drdrill.core.privileges`), in the cluster's database and in postgres."""
    if superuser:
        return [CheckResult("privileges", Status.PASS, f"{user!r} is a superuser: every step works, but the drills "
                            f"need far less; see the least-privilege role in include/estate/README.md", target,
                            details={"superuser": True})]
    if not missing:
        return [_pass("privileges", target, f"{user!r} has every privilege the drills use")]
    whats = "; ".join(m[0] for m in missing)
    fixes = "; ".join(m[1] for m in missing)
    return [_fail("privileges", target, f"{user!r} lacks: {whats}", f"as a superuser on {node.name}: {fixes}",
                  missing=[m[0] for m in missing])]


# ------------------------------------------------------------------------------------ pgBackRest
def _where(spec: Any) -> str:
    return f"ssh connection {spec.ssh_conn_id!r}" if spec.kind == "ssh" else f"{spec.kind} runner"


def check_node_runner(cluster: Cluster, node: Node) -> list[CheckResult]:
    """The node's runner reaches its host and finds the PostgreSQL server binaries there."""
    from drdrill.core.runner import runner_for

    spec = cluster.runner_of(node)
    target = f"{cluster.name}/{node.name}"
    pg_ctl = str(cluster.postgres.bin_dir / "pg_ctl")
    try:
        res = runner_for(spec).run([pg_ctl, "--version"], timeout=30, check=True)
    except DrillError as e:
        return [_fail("runner", target, f"could not run `{pg_ctl} --version` for {node.name} through the "
                      f"{_where(spec)}: {_first_line(e)}",
                      f"check {node.name}'s runner (clusters[{cluster.name}].nodes[{node.name}].runner or the "
                      f"cluster's: kind, ssh_conn_id, run_as) and postgres.bin_dir on {node.host}")]
    return [_pass("runner", target, f"{res.stdout.strip()} on {node.host} through the {_where(spec)}")]


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_backups(cluster: Cluster, *, deep: bool = True) -> list[CheckResult]:
    """pgBackRest runs through the backup runner; (``deep``) each repo's endpoint answers and ``info``
    per repo says ok."""
    from drdrill.core.runner import runner_for
    from drdrill.drills.daily import probe_repos
    from drdrill.hooks.pgbackrest import PgBackRestHook
    from drdrill.hooks.pgbackrest_models import evaluate_info, select_stanza

    pb = cluster.pgbackrest
    spec = cluster.backup_runner
    runner = runner_for(spec)
    target = f"{cluster.name}/pgbackrest"
    try:
        res = runner.run(["pgbackrest", "version"], timeout=pb.command_timeout_seconds, check=True)
    except DrillError as e:
        return [_fail("runner", target, f"could not run `pgbackrest version` through the {_where(spec)}: "
                      f"{_first_line(e)}", "install pgBackRest where the cluster's backups are read, and check "
                      f"the runner (clusters[{cluster.name}].pgbackrest.runner, else the primary's)")]
    out = [_pass("runner", target, f"{res.stdout.strip()} runs through the {_where(spec)}")]
    if not deep:
        return out
    br = PgBackRestHook.for_cluster(cluster, runner)
    probes = probe_repos(br, [r.index for r in pb.repos], {r.index: r.probe_timeout_seconds for r in pb.repos},
                         target=cluster.name)
    for repo in pb.repos:
        where = f"{cluster.name}/repo{repo.index}"
        probed = probes.get(repo.index)
        if probed is not None:
            out.append(probed if not probed.failed else replace(probed, message=(
                f"{probed.message}. Fix: check the repo's endpoint, its DNS and the network path from the "
                f"database host")))
            if probed.failed:
                continue
        try:
            stanza = select_stanza(br.info(repo=repo.index, timeout=pb.command_timeout_seconds), pb.stanza)
        except DrillError as e:
            out.append(_fail("pgbackrest_info", where, f"`pgbackrest info --repo={repo.index}` failed: "
                             f"{str(e).strip()[-400:]}", f"run it by hand on the database host as the runner's "
                             f"user, with --config={pb.config}" if pb.config else "run it by hand on the host"))
            continue
        for r in evaluate_info(stanza, max_age_hours={}, now=_now(), target=cluster.name):
            if r.name == "stanza_status" or r.name == "repo_status" and r.target == where:
                out.append(replace(r, name="pgbackrest_info", target=where))
    return out


def check_dr(cluster: Cluster, *, deep: bool = True) -> list[CheckResult]:
    """The DR region (clusters[].dr): the DR node's runner reaches its host, its pgbackrest.conf names only the
    DR repo (checked where it is on this worker) and (``deep``) reads the stanza there."""
    from drdrill.core.runner import LocalRunner
    from drdrill.drills.failover.region import DrSite

    site = DrSite(cluster)
    target = f"{cluster.name}/{site.node.name}"
    out = check_node_runner(cluster, site.node)
    if any(r.failed for r in out):
        return [replace(r, message=r.message.replace(f"clusters[{cluster.name}].nodes[{site.node.name}].runner",
                                                     f"clusters[{cluster.name}].dr.node.runner")) for r in out]
    br = site.hook()
    if isinstance(br.runner, LocalRunner):
        try:
            named = br.configured_repos()
        except OSError as e:
            return [*out, _fail("dr_pgbackrest_config", target, f"cannot read {site.dr.pgbackrest_config}: {e}",
                                f"write the DR host's pgbackrest.conf there (clusters[{cluster.name}].dr."
                                f"pgbackrest_config), naming repo{site.repo} only")]
        others = [r for r in named if r != site.repo]
        if others or site.repo not in named:
            return [*out, _fail("dr_pgbackrest_config", target, f"{site.dr.pgbackrest_config} names repo(s) {named}",
                                f"the DR host's config must name repo{site.repo} (the DR region's) and nothing "
                                f"else: the recovery must not depend on the lost region")]
        out.append(_pass("dr_pgbackrest_config", target, f"{site.dr.pgbackrest_config} names repo{site.repo} only"))
    if deep:
        try:
            found = [st for st in br.info(repo=site.repo, timeout=cluster.pgbackrest.command_timeout_seconds)
                     if st.name == cluster.pgbackrest.stanza]
        except DrillError as e:
            return [*out, _fail("dr_pgbackrest_info", target, f"`pgbackrest info --repo={site.repo}` with "
                                f"{site.dr.pgbackrest_config} failed: {str(e).strip()[-400:]}",
                                f"run it by hand on {site.node.host} as the runner's user")]
        st = found[0] if found else None
        if st is not None and st.status_code in (0, 2):  # 2: no valid backup (Assess judges the backups)
            out.append(_pass("dr_pgbackrest_info", target, f"repo{site.repo} holds stanza {st.name} as the DR host "
                             f"reads it ({st.status_message})"))
        else:
            why = f"{st.status_message} (code {st.status_code})" if st else "no such stanza"
            out.append(_fail("dr_pgbackrest_info", target, f"repo{site.repo} read with {site.dr.pgbackrest_config}: "
                             f"stanza {cluster.pgbackrest.stanza!r}: {why}",
                             "check the DR config's repo path, bucket, keys and cipher passphrase"))
    return out


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


# ------------------------------------------------------------------------------------ DNS, stores
def check_dns(cluster: Cluster) -> list[CheckResult]:
    """The runbook's Route53 zone and service record can be read with its connection."""
    if not cluster.failover or not cluster.failover.dns:
        return []
    from drdrill.hooks import route53

    dns = cluster.failover.dns
    target = f"{cluster.name}/{dns.record}"
    r53 = route53.client(dns)
    zone_id = r53.zone_id(dns.zone, dns.hosted_zone_id)
    state = route53.current(dns, r53)
    if state.value is None:
        return [_fail("dns", target, f"zone {dns.zone} ({zone_id}) has no {dns.type} record {dns.record}",
                      "create the service record (the runbook switches an existing record, it never creates one)")]
    owner = route53.node_for_value(cluster.members, dns, state.value)
    if owner is None:
        return [_fail("dns", target, f"{dns.record} points at {state.value}, which is none of the cluster's nodes",
                      "set the nodes' dns_name to what the record holds for each of them")]
    return [_pass("dns", target, f"{dns.record} -> {state.value} ({owner.name}) in zone {dns.zone} ({zone_id})")]


def check_store(label: str, location: str, conn_id: str | None) -> CheckResult:
    """The journal or state store exists (or, for a local directory, can be created)."""
    from drdrill.core.journal import storage

    target = f"{label} {location}"
    if location.startswith("file://"):
        path = Path(location.removeprefix("file://"))
        existing = next((p for p in [path, *path.parents] if p.exists()), Path("/"))
        if path.exists() and os.access(path, os.W_OK) or not path.exists() and os.access(existing, os.W_OK):
            return _pass("store", target, f"{path} is writable" if path.exists() else
                         f"{path} will be created under {existing}")
        return _fail("store", target, f"{existing} is not writable by this process",
                     f"create {path} writable by the Airflow workers' user (or point {label}.location elsewhere)")
    root = storage(location, conn_id)
    if root.exists():
        return _pass("store", target, f"{location} is reachable")
    return _fail("store", target, f"{location} does not exist or cannot be read with connection {conn_id!r}",
                 f"create the bucket (with Object Lock for evidence) or fix {label}.conn_id")


# ------------------------------------------------------------------------------------ the whole estate
def check_estate(path: Path | str | None = None, *, clusters: list[str] | None = None, drill: str | None = None,
                 down_ok: bool = False, deep: bool = True, node_runners: bool = True,
                 estate: Estate | None = None) -> list[CheckResult]:
    """Every check, in order: the file, the connections, then per cluster its nodes, backups and DNS.

    ``clusters`` limits the check to those clusters; ``drill`` to the clusters that allow that drill;
    ``down_ok`` reports a node that does not answer as SKIP (the incident runbook, whose primary is
    down by definition); a node that answers but refuses the drills' login always fails.
    Without ``deep`` (a drill's first task) only what a configuration error breaks is checked:
    the state of the estate (node roles, repos' health) is what the drills themselves judge.
    Without ``node_runners`` no command runs on the nodes' hosts (a drill that never acts there:
    the restore test and the daily verification use only the backup host's runner).
    """
    if estate is None:
        try:
            estate = load_estate(path)
        except EstateError as e:
            return [_fail("estate_file", str(path or "DRDRILL_ESTATE"), str(e).strip(),
                          "correct the file as the lines above say (schema: include/estate/estate.schema.json)")]
    chosen = [estate.cluster(n) for n in clusters] if clusters else (
        estate.clusters_for(drill) if drill else list(estate.clusters))
    out = [_pass("estate_file", str(estate.source), f"valid: {len(estate.clusters)} cluster(s) "
                 f"({', '.join(c.name for c in estate.clusters)}); checking {', '.join(c.name for c in chosen)}")]
    out += [check_connection(*t) for t in connection_ids(estate, chosen, drill)]
    if any(r.failed for r in out):  # a missing connection would fail every check that uses it, less clearly
        return out
    out.append(_guard("store", "journal", lambda: [check_store("journal", estate.journal.location,
                                                                estate.journal.conn_id)]))
    st = estate.state_store
    out.append(_guard("store", "state", lambda: [check_store("state", st.location, st.conn_id)]))
    jobs: list[tuple[str, str, Callable[[], list[CheckResult]]]] = []
    for c in chosen:
        for n in c.nodes:
            jobs.append(("postgres_login", f"{c.name}/{n.name}",
                         lambda c=c, n=n: check_node(c, n, down_ok=down_ok, deep=deep)))
            if node_runners:
                jobs.append(("runner", f"{c.name}/{n.name}", lambda c=c, n=n: check_node_runner(c, n)))
        jobs.append(("runner", c.name, lambda c=c: check_backups(c, deep=deep)))
        if c.dr is not None and node_runners:
            jobs.append(("dr", f"{c.name}/{c.dr.node.name}", lambda c=c: check_dr(c, deep=deep)))
        jobs.append(("dns", c.name, lambda c=c: check_dns(c)))
    with ThreadPoolExecutor(max_workers=min(8, len(jobs)), thread_name_prefix="estate-check") as pool:
        for results in pool.map(lambda j: _guard_many(*j), jobs):
            out += results
    return out


def _guard_many(name: str, target: str, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - one check that cannot be asked must not hide the others
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return [_fail(name, target, f"could not check: {type(e).__name__}: {text}",
                      "read the error; the other checks below still ran")]


def _guard(name: str, target: str, fn: Callable[[], list[CheckResult]]) -> CheckResult:
    return _guard_many(name, target, fn)[0]


def report(results: list[CheckResult]) -> str:
    """The lines the CLI prints: every check in order, then the verdict."""
    failed = [r for r in results if r.failed]
    lines = [r.line() for r in results]
    lines.append(f"{len(failed)} of {len(results)} checks failed" if failed else
                 f"all {len(results)} checks passed")
    return "\n".join(lines)
