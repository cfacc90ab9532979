"""S3 Object Lock on the immutable copy: is the bucket still WORM, and are its newest objects locked?

``daily(entry, estate)`` runs, through `ObjectLockHook` (the amazon provider's S3Hook), on one
``backups.object_lock`` entry:

- ``object_lock_config``: Object Lock enabled, a default retention of the estate's mode
  (COMPLIANCE unless the estate asks GOVERNANCE; GOVERNANCE is weaker: anyone allowed
  ``s3:BypassGovernanceRetention`` can delete a version or shorten its retention) and of at least
  ``min_retention_days`` (Years counted as 365 days), and versioning Enabled;
- ``object_lock_retention``: the ``newest_objects`` newest objects under ``prefix`` carry the
  mode and a retain-until date in the future, at least ``min_retention_days`` after they were
  written (an object written with a shorter explicit retention is found here);
- ``object_lock_delete_probe`` (``delete_probe: true``): a probe object is written, takes the
  default retention, and deleting its version must be refused.

A bucket that does not exist or that the connection may not read is a FAIL naming the bucket and
the fix, never an exception. Every target is ``object_lock/<entry name>``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from drdrill.core.backups import ObjectLock
from drdrill.core.checks import CheckResult, Status
from drdrill.core.estate import Estate
from drdrill.drills.backups import target
from drdrill.hooks.s3_lock import ObjectLockError, ObjectLockHook

KIND = "object_lock"
# A version written with the default retention is locked until its write time + the retention; this much
# slack covers rounding and the gap between LastModified and the moment the lock was computed.
SLACK = dt.timedelta(days=1)
STRENGTH = {"GOVERNANCE": 1, "COMPLIANCE": 2}


def hook(entry: ObjectLock) -> ObjectLockHook:
    """The entry's hook: its Airflow AWS connection, in its region when it names one."""
    kwargs = {"region_name": entry.region} if entry.region else {}
    return ObjectLockHook(aws_conn_id=entry.conn_id, **kwargs)


def daily(entry: ObjectLock, estate: Estate | None = None, *, s3: ObjectLockHook | None = None
          ) -> list[CheckResult]:
    """The entry's checks: config, the newest objects' retention, and the delete probe when asked.

    ``s3``: the hook to use (default: one on the entry's connection and region).
    """
    s3 = s3 or hook(entry)
    tgt = target(KIND, entry.name)
    config = _guard("object_lock_config", entry, tgt, lambda: check_config(s3, entry, tgt))
    if config.details.get("nothing_readable"):  # nothing else can be read: say so once
        why = ("does not exist" if config.details.get("missing_bucket")
               else f"could not be reached ({config.details.get('error_code')})")
        skipped = [CheckResult(n, Status.SKIP, f"not checked: bucket {entry.bucket!r} {why}", tgt)
                   for n in ("object_lock_retention", *(["object_lock_delete_probe"] if entry.delete_probe else []))]
        return [config, *skipped]
    out = [config, _guard("object_lock_retention", entry, tgt, lambda: check_retention(s3, entry, tgt))]
    if entry.delete_probe:
        out.append(_guard("object_lock_delete_probe", entry, tgt, lambda: check_delete_probe(s3, entry, tgt)))
    return out


def _guard(name: str, entry: ObjectLock, tgt: str, check: Callable[[], CheckResult]) -> CheckResult:
    """The check's result, or a FAIL carrying the S3 error (which names the bucket and the fix)."""
    try:
        return check()
    except ObjectLockError as e:
        return CheckResult(name, Status.FAIL, str(e), tgt, details={
            "bucket": entry.bucket, "error_code": e.code, "missing_bucket": e.missing_bucket,
            "nothing_readable": e.nothing_readable})


# ---------------------------------------------------------------------------------------------- config
def check_config(s3: ObjectLockHook, entry: ObjectLock, tgt: str) -> CheckResult:
    """Object Lock enabled, default retention mode and length, versioning Enabled: every shortfall listed."""
    b = entry.bucket
    cfg = s3.lock_configuration(b)
    versioning = s3.versioning(b)
    days = cfg.retention_days
    details = {"bucket": b, "enabled": cfg.enabled, "mode": cfg.mode, "retention_days": days,
               "versioning": versioning, "required_mode": entry.mode, "min_retention_days": entry.min_retention_days}
    problems: list[str] = []
    if not cfg.enabled:
        problems.append(f"Object Lock is not enabled on bucket {b!r}: nothing stops a delete of any version. Fix: "
                        f"enable versioning and `aws s3api put-object-lock-configuration --bucket {b} "
                        f"--object-lock-configuration '{_config_json(entry)}'` (or copy the backups to a bucket "
                        f"created with --object-lock-enabled-for-bucket)")
    elif not cfg.mode:
        problems.append(f"bucket {b!r} has Object Lock but no default retention: versions written without an "
                        f"explicit retention are not locked. Fix: `aws s3api put-object-lock-configuration "
                        f"--bucket {b} --object-lock-configuration '{_config_json(entry)}'`")
    else:
        if STRENGTH.get(cfg.mode, 0) < STRENGTH[entry.mode]:
            problems.append(f"default retention mode {cfg.mode} is weaker than {entry.mode}: anyone allowed "
                            f"s3:BypassGovernanceRetention can delete a version or shorten its retention. Fix: "
                            f"set the default retention's Mode to {entry.mode} (versions written in COMPLIANCE "
                            f"cannot be deleted or shortened by anyone until their date: settle the retention first)")
        if days is None or days < entry.min_retention_days:
            problems.append(f"default retention {days} day(s) < the {entry.min_retention_days} days the estate "
                            f"requires (min_retention_days). Fix: raise the default retention to "
                            f"{entry.min_retention_days} days")
    if versioning != "Enabled":
        problems.append(f"versioning is {versioning} on bucket {b!r}, expected Enabled: Object Lock protects "
                        f"versions. Fix: `aws s3api put-bucket-versioning --bucket {b} "
                        f"--versioning-configuration Status=Enabled`")
    if problems:
        return CheckResult("object_lock_config", Status.FAIL, "; ".join(problems), tgt, details=details)
    weaker = (" (GOVERNANCE, as the estate asks: weaker than COMPLIANCE, it can be bypassed with "
              "s3:BypassGovernanceRetention)" if cfg.mode == "GOVERNANCE" else "")
    return CheckResult("object_lock_config", Status.PASS,
                       f"bucket {b!r}: Object Lock enabled, default retention {cfg.mode} {days} days >= "
                       f"{entry.min_retention_days}{weaker}, versioning Enabled", tgt, value=days,
                       threshold=entry.min_retention_days, details=details)


def _config_json(entry: ObjectLock) -> str:
    return json.dumps({"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {
        "Mode": entry.mode, "Days": entry.min_retention_days}}}, separators=(",", ":"))


# ------------------------------------------------------------------------------------------- retention
def check_retention(s3: ObjectLockHook, entry: ObjectLock, tgt: str) -> CheckResult:
    """The newest ``newest_objects`` objects under ``prefix`` are locked, in the mode, long enough, from now on."""
    name, b = "object_lock_retention", entry.bucket
    where = f"s3://{b}/{entry.prefix}"
    if entry.newest_objects == 0:
        return CheckResult(name, Status.SKIP, f"{where}: newest_objects is 0, retention not checked", tgt)
    objects = s3.newest_objects(b, entry.prefix, entry.newest_objects)
    if not objects:
        return CheckResult(name, Status.FAIL, f"no objects under {where}: the immutable copy holds nothing there. "
                           f"Fix: check the prefix in the estate (where the backups are written) and that backups "
                           f"reach this bucket", tgt, value=0, threshold=entry.newest_objects)
    now = dt.datetime.now(dt.UTC)
    need = dt.timedelta(days=entry.min_retention_days) - SLACK
    bad: list[str] = []
    rows = []
    for o in objects:
        until = o.retain_until
        rows.append({"key": o.key, "version_id": o.version_id, "last_modified": o.last_modified.isoformat(),
                     "mode": o.mode, "retain_until": until.isoformat() if until else None})
        if until is None or not o.mode:
            bad.append(f"{o.key}: no retention (no retain-until date)")
        elif until <= now:
            bad.append(f"{o.key}: retention ended {until:%Y-%m-%dT%H:%M:%SZ}")
        elif STRENGTH.get(o.mode, 0) < STRENGTH[entry.mode]:
            bad.append(f"{o.key}: mode {o.mode}, weaker than {entry.mode}")
        elif until - o.last_modified < need:
            bad.append(f"{o.key}: locked until {until:%Y-%m-%dT%H:%M:%SZ}, "
                       f"{(until - o.last_modified).total_seconds() / 86400:.1f} days after it was written, "
                       f"less than {entry.min_retention_days}")
    details = {"bucket": b, "prefix": entry.prefix, "objects": rows}
    if bad:
        return CheckResult(name, Status.FAIL, f"{len(bad)} of the {len(objects)} newest objects under {where} are "
                           f"not locked as required ({entry.mode}, {entry.min_retention_days} days): "
                           + "; ".join(bad) + ". Fix: set the bucket's default retention (object_lock_config) "
                           "and check the writer sends no shorter retention", tgt, value=len(bad), threshold=0,
                           details=details)
    soonest = min(o.retain_until for o in objects if o.retain_until)
    return CheckResult(name, Status.PASS, f"the {len(objects)} newest objects under {where} are locked "
                       f"({', '.join(sorted({o.mode for o in objects if o.mode}))}), the soonest until "
                       f"{soonest:%Y-%m-%dT%H:%M:%SZ}", tgt, value=len(objects), threshold=entry.newest_objects,
                       details=details)


# ----------------------------------------------------------------------------------------------- probe
def check_delete_probe(s3: ObjectLockHook, entry: ObjectLock, tgt: str) -> CheckResult:
    """Write a probe object and try to delete its version: a refusal passes, a delete that succeeds fails."""
    name, b = "object_lock_delete_probe", entry.bucket
    p = s3.delete_probe(b, entry.probe_prefix)
    where = f"s3://{b}/{p.key}" + (f" version {p.version_id}" if p.version_id else "")
    details = {"bucket": b, "key": p.key, "version_id": p.version_id, "mode": p.mode,
               "retain_until": p.retain_until.isoformat() if p.retain_until else None, "error_code": p.error_code}
    if p.refused and p.mode and p.retain_until:
        return CheckResult(name, Status.PASS, f"deleting {where} was refused ({p.error_code}: {p.error_message}); "
                           f"it is locked ({p.mode}) until {p.retain_until:%Y-%m-%dT%H:%M:%SZ}", tgt,
                           details=details)
    if p.refused:
        return CheckResult(name, Status.FAIL, f"deleting {where} was refused ({p.error_code}), but the probe carries "
                           f"no retention: the refusal came from a policy (the connection may not "
                           f"s3:DeleteObjectVersion), not from Object Lock, which proves nothing about the copy. "
                           f"Fix: a default retention on the bucket (object_lock_config)", tgt, details=details)
    if p.error_code:
        return CheckResult(name, Status.FAIL, f"the probe is inconclusive: deleting {where} failed with "
                           f"{p.error_code} ({p.error_message}), not with the AccessDenied an Object Lock gives. "
                           f"Fix: check the connection and the bucket, then rerun", tgt, details=details)
    return CheckResult(name, Status.FAIL, f"deleting {where} SUCCEEDED: the bucket's versions can be destroyed, it "
                       f"is no immutable copy (probe mode {p.mode or 'none'}, retain-until "
                       f"{p.retain_until or 'none'}). Fix: Object Lock with a default retention in "
                       f"{entry.mode} mode (object_lock_config)", tgt, details=details)
