"""The 3-2-1-1-0 scorecard of one cluster, computed by the daily verification from its own checks.

- **3 copies**: the live primary, each pgBackRest repo holding a backup inside its age target, each
  AWS Backup vault (and its DR-region vault) or Velero install or bucket the estate says holds a
  copy of the cluster (``copies:``) whose checks passed;
- **2 media**: distinct kinds of storage among them (disk, object storage, AWS Backup vault);
- **1 offsite**: a copy in a region other than the primary's;
- **1 immutable**: a copy under S3 Object Lock COMPLIANCE whose checks passed (a pgBackRest repo's
  bucket: ``object_lock`` with ``copies: [{cluster, repo}]``), or in a vault whose lock is immutable;
- **0 errors**: ``pgbackrest verify`` clean on every repo, no backup flagged with errors, and the
  last restore test of the cluster passed within ``max_restore_test_age_days`` (its journal).

Each digit is a check with the evidence that earned it; the ``scorecard`` check fails when a digit
is short of the estate's ``backups.scorecard`` or lower than the previous daily run's (the score
dropped), which it reads from and writes to the state store (``scorecard/<cluster>.json``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drdrill.core import journal, statestore
from drdrill.core.checks import CheckResult, Status
from drdrill.core.estate import Cluster, Estate

log = logging.getLogger(__name__)

DIGITS = ("copies", "media", "offsite", "immutable", "errors")
RESTORE_DRILL = "dr_monthly_restore_test"
_MEDIA = {"posix": "disk", "cifs": "disk", "sftp": "disk", "s3": "object storage", "gcs": "object storage",
          "azure": "object storage"}
# The checks that say a repo holds a usable backup (verify and continuity count towards the errors digit).
_REPO_HOLDS = ("repo_reachable", "repo_status", "stanza_status", "backup_age.", "backup_errors")


@dataclass(frozen=True)
class Copy:
    """One copy of the cluster's data, with where it is and what earned it."""

    name: str
    media: str
    region: str | None
    immutable: bool = False
    evidence: str = ""
    immutable_evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "media": self.media, "region": self.region, "immutable": self.immutable,
                "evidence": self.evidence, "immutable_evidence": self.immutable_evidence}


def _failed(results: list[CheckResult], prefix: str, names: tuple[str, ...] = ()) -> list[CheckResult]:
    """Failed results about ``prefix`` (the target itself or below it), optionally only these check names."""
    return [r for r in results if r.failed and (r.target == prefix or r.target.startswith(prefix + "/"))
            and (not names or r.name.startswith(names))]


def _ran(results: list[CheckResult], prefix: str) -> bool:
    return any(r.target == prefix or r.target.startswith(prefix + "/") for r in results)


def copies(cluster: Cluster, estate: Estate, results: list[CheckResult]) -> tuple[list[Copy], list[str], list[str]]:
    """The copies that count, why each one that does not count is missing, and why a copy the estate says is
    immutable is not."""
    out = [Copy(f"{cluster.primary.name} (live)", "disk", cluster.primary_region, evidence="the primary itself")]
    missing: list[str] = []
    not_immutable: list[str] = []
    locked = {}
    for kind, entry, c in estate.backups.copies_of(cluster.name):
        if kind == "object_lock" and c.repo is not None:
            prefix = f"object_lock/{entry.name}"
            bad = _failed(results, prefix)
            if bad or not _ran(results, prefix):
                not_immutable.append(f"repo{c.repo} is not immutable: "
                                     + (bad[0].line() if bad else f"object_lock {entry.name} was not checked"))
            else:
                locked[c.repo] = f"S3 Object Lock {entry.mode} on bucket {entry.bucket} (object_lock {entry.name})"
    for repo in cluster.pgbackrest.repos:
        where = f"{cluster.name}/repo{repo.index}"
        bad = _failed(results, where, _REPO_HOLDS)
        if bad or not _ran(results, where):
            missing.append(f"repo{repo.index}: " + (bad[0].line() if bad else "no check of it ran"))
            continue
        ok = [r for r in results if r.target == where and r.name.startswith("backup_age.") and not r.failed]
        out.append(Copy(f"repo{repo.index} ({repo.type})", _MEDIA[repo.type], repo.region, repo.index in locked,
                        ok[0].message if ok else "", locked.get(repo.index, "")))
    for kind, entry, c in estate.backups.copies_of(cluster.name):
        prefix = f"{kind}/{entry.name}"
        if kind == "object_lock" and c.repo is not None:
            continue
        if kind == "aws_backup":
            main = [r for r in _failed(results, prefix) if not r.target.startswith(prefix + "/dr_vault")]
            lock_ok = (entry.vault_lock is not None and entry.vault_lock.immutable and "vault_lock" in entry.checks
                       and any(r.name == "aws_backup_vault_lock" and r.status is Status.PASS
                               and r.target.startswith(prefix) for r in results))
            if main or not _ran(results, prefix):
                missing.append(f"AWS Backup vault {entry.vault}: " + (main[0].line() if main else "not checked"))
            else:
                out.append(Copy(f"AWS Backup vault {entry.vault}", "AWS Backup vault", entry.region, lock_ok,
                                f"aws_backup {entry.name} checks passed",
                                f"vault lock of {entry.vault} immutable (aws_backup {entry.name})" if lock_ok else ""))
            if entry.dr_vault:
                dr = _failed(results, prefix + "/dr_vault")
                if dr or not _ran(results, prefix + "/dr_vault"):
                    missing.append(f"AWS Backup DR vault {entry.dr_vault.name}: "
                                   + (dr[0].line() if dr else "not checked"))
                else:
                    out.append(Copy(f"AWS Backup vault {entry.dr_vault.name}", "AWS Backup vault",
                                    entry.dr_vault.region, False, f"aws_backup {entry.name} DR vault checks passed"))
            continue
        bad = _failed(results, prefix)
        if bad or not _ran(results, prefix):
            missing.append(f"{kind} {entry.name}: " + (bad[0].line() if bad else "not checked"))
            continue
        if kind == "velero":
            out.append(Copy(f"Velero {entry.name}", "object storage", None, False, f"velero {entry.name} passed"))
        else:  # a bucket holding a copy of its own (e.g. a replication target)
            out.append(Copy(f"bucket {entry.bucket}", "object storage", entry.region, True,
                            f"object_lock {entry.name} checks passed",
                            f"S3 Object Lock {entry.mode} on bucket {entry.bucket}"))
    return out, missing, not_immutable


def restored(doc: dict[str, Any]) -> bool:
    """Whether a restore test's run restored anything: a dry run, or a run refused before its restore step
    (a bad param, the kill switch, a busy cluster), proves nothing either way."""
    if (doc.get("params") or {}).get("dry_run"):
        return False
    return any(st.get("task_id") == "restore" and st.get("status") in ("success", "failed")
               for st in doc.get("steps") or [])


def last_restore_test(estate: Estate, cluster: str) -> dict[str, Any] | None:
    """The newest journal of a restore test of ``cluster`` that restored (`restored`): run id, status, when,
    path."""
    best: dict[str, Any] | None = None
    for path in journal.listed(estate.journal.location, estate.journal.conn_id, RESTORE_DRILL):
        try:
            doc = journal.read(path, estate.journal.conn_id)
        except (OSError, ValueError) as e:
            log.warning("journal %s could not be read (%s); skipped", path, e)
            continue
        if doc.get("cluster") != cluster or not restored(doc):
            continue
        item = {"run_id": doc.get("run_id"), "status": doc.get("status"), "written_at": doc.get("written_at"),
                "journal": path}
        if best is None or str(item["written_at"]) > str(best["written_at"]):
            best = item
    return best


def errors(cluster: Cluster, estate: Estate, results: list[CheckResult], now: datetime) -> tuple[int, list[str]]:
    """The '0': verify problems, backups with errors, and a restore test that did not pass recently."""
    found: list[str] = []
    for r in results:
        if r.failed and r.name in ("verify", "backup_errors") and (
                r.target == cluster.name or r.target.startswith(cluster.name + "/")):
            found.append(r.line())
    if not any(r.name == "verify" and r.target.startswith(cluster.name) for r in results):
        found.append("pgbackrest verify did not run: nothing proves the backups are readable")
    bound = estate.backups.scorecard.max_restore_test_age_days
    last = last_restore_test(estate, cluster.name)
    if last is None:
        found.append(f"no restore test of {cluster.name} has run: run {RESTORE_DRILL} (the '0' needs one that "
                     f"passed within {bound:g} days)")
    else:
        when = datetime.fromisoformat(str(last["written_at"]))
        age = (now - when).total_seconds() / 86400
        if last["status"] != "passed":
            found.append(f"the last restore test ({last['run_id']}, {when:%Y-%m-%d %H:%M} UTC) {last['status']}: "
                         f"{last['journal']}")
        elif age > bound:
            found.append(f"the last passed restore test ({last['run_id']}) is {age:.0f} days old, over "
                         f"{bound:g} days: run {RESTORE_DRILL}")
    return len(found), found


def _state_path(estate: Estate, cluster: str) -> Any:
    return statestore.path(estate.state_store, "scorecard", f"{cluster}.json")


def previous(estate: Estate, cluster: str) -> dict[str, Any] | None:
    p = _state_path(estate, cluster)
    if not p.exists():
        return None
    return json.loads(p.read_text())


def score(cluster: Cluster, estate: Estate, results: list[CheckResult], now: datetime | None = None,
          record: bool = True) -> list[CheckResult]:
    """One check per digit with its evidence, then ``scorecard``: below the estate's or dropped fails."""
    now = now or datetime.now(UTC)
    want = estate.backups.scorecard
    have, missing, not_immutable = copies(cluster, estate, results)
    primary_region = cluster.primary_region
    offsite = [c for c in have if c.region and primary_region and c.region != primary_region]
    immutable = [c for c in have if c.immutable]
    media = sorted({c.media for c in have})
    n_err, err_lines = errors(cluster, estate, results, now)
    digits = {"copies": len(have), "media": len(media), "offsite": len(offsite), "immutable": len(immutable),
              "errors": n_err}
    t = f"{cluster.name}/scorecard"
    out = [
        _digit("copies", len(have), want.copies, t, ", ".join(c.name for c in have), "; ".join(missing),
               {"copies": [c.to_dict() for c in have], "not_counted": missing}),
        _digit("media", len(media), want.media, t, ", ".join(media), "", {"media": media}),
        _digit("offsite", len(offsite), want.offsite, t,
               ", ".join(f"{c.name} in region {c.region}" for c in offsite),
               "" if primary_region else "the primary's region is not in the estate (nodes[].region)",
               {"primary_region": primary_region, "offsite": [c.name for c in offsite]}),
        _digit("immutable", len(immutable), want.immutable, t,
               ", ".join(f"{c.name}: {c.immutable_evidence}" for c in immutable), "; ".join(not_immutable),
               {"immutable": [c.name for c in immutable], "not_immutable": not_immutable}),
    ]
    ok0 = n_err == 0
    last = last_restore_test(estate, cluster.name)
    if ok0:
        age = (now - datetime.fromisoformat(str(last["written_at"]))).total_seconds() / 86400
        msg0 = (f"0 errors: verify clean, no backup with errors, the last restore test ({last['run_id']}) passed "
                f"{age:.1f} days ago (within {want.max_restore_test_age_days:g})")
    else:
        msg0 = f"{n_err} error(s): " + " | ".join(err_lines)
    out.append(CheckResult("scorecard.errors", Status.PASS if ok0 else Status.FAIL, msg0, t, n_err, 0,
                           {"errors": err_lines, "last_restore_test": last}))
    text = "-".join(str(digits[d]) for d in DIGITS)
    wanted = f"{want.copies}-{want.media}-{want.offsite}-{want.immutable}-0"
    prev = previous(estate, cluster.name)
    dropped = []
    if prev:
        old = prev.get("digits", {})
        dropped = [d for d in DIGITS if d in old and (digits[d] > old[d] if d == "errors" else digits[d] < old[d])]
    short = [r.name.removeprefix("scorecard.") for r in out if r.failed]
    msg = f"3-2-1-1-0 scorecard of {cluster.name}: {text} (required {wanted})"
    if dropped:
        msg += f"; dropped from {prev['score']} ({prev.get('at', '?')}) in {', '.join(dropped)}"
    if short:
        msg += f"; short: {', '.join(short)}"
    out.append(CheckResult("scorecard", Status.FAIL if short or dropped else Status.PASS, msg, t, text, wanted,
                           {"score": text, "digits": digits, "previous": prev, "dropped": dropped}))
    if record:
        statestore.write_atomically(_state_path(estate, cluster.name), json.dumps(
            {"score": text, "digits": digits, "at": now.isoformat(timespec="seconds")}))
    return out


def _digit(name: str, value: int, required: int, target: str, evidence: str, why: str,
           details: dict[str, Any]) -> CheckResult:
    ok = value >= required
    msg = f"{value} {name} (required {required})" + (f": {evidence}" if evidence else "")
    if why:
        msg += f". Not counted: {why}"
    return CheckResult(f"scorecard.{name}", Status.PASS if ok else Status.FAIL, msg, target, value, required, details)


def daily(estate: Estate, clusters: list[str], results: list[CheckResult]) -> list[CheckResult]:
    """The scorecard of every cluster the daily verification checked, from that run's results."""
    return [r for name in clusters for r in score(estate.cluster(name), estate, results)]

