"""Velero's daily checks: the Schedules match the estate, their newest Backups completed recently, and the
BackupStorageLocations are Available.

``daily(entry, estate)`` reads one ``backups.velero`` entry's install through `drdrill.hooks.velero.VeleroHook`
and returns one `CheckResult` per schedule and check:

- ``velero_schedule`` (``velero/<entry>/<schedule>``): the Schedule exists, is not paused and matches every
  field the estate gives (cron, included namespaces, excluded resources, ttl, storage location, the named
  backup hooks); every drifting field is named with the estate's and the live value;
- ``velero_backup`` (``velero/<entry>/<schedule>``): the schedule's newest finished Backup (label
  ``velero.io/schedule-name``) is ``Completed`` and younger than the bound (the schedule's
  ``max_backup_age_hours``, else the entry's, default 26 h); ``PartiallyFailed`` / ``Failed`` name their error
  and warning counts and failure reason; a schedule without any backup fails;
- ``velero_storage_location`` (``velero/<entry>/<location>``): each BackupStorageLocation is ``Available``
  (else its phase and message).

Anything missing, forbidden or unreachable is a failed check naming the resource and the connection, never an
exception; an unreachable API is one ``velero_connection`` failure (``velero/<entry>``) instead of one per check.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from drdrill.core.backups import Velero, VeleroSchedule
from drdrill.core.checks import CheckResult, Status
from drdrill.core.errors import DrillError
from drdrill.drills.backups import target
from drdrill.hooks.velero import SCHEDULES, STORAGE_LOCATIONS, VeleroHook, VeleroUnreachable, backup_time, parse_time

KIND = "velero"
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


def hook_for(entry: Velero) -> VeleroHook:
    return VeleroHook(kubernetes_conn_id=entry.conn_id, velero_namespace=entry.namespace)


def go_duration_seconds(value: str | None) -> float | None:
    """A Go duration (``720h0m0s``, ``720h``, ``90m``, ``1h30m``) in seconds; ``None`` when absent or
    unparsable."""
    if not value:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", str(value).strip())
    if not parts or "".join(n + u for n, u in parts) != str(value).strip():
        return None
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)


def schedule_drift(want: VeleroSchedule, live: dict[str, Any]) -> list[str]:
    """Every field of ``want`` the live Schedule does not match: ``"<field>: estate <x>, live <y>"``."""
    spec = live.get("spec") or {}
    tmpl = spec.get("template") or {}
    out: list[str] = []
    if spec.get("paused"):
        out.append("paused: live true (a paused schedule takes no backups), estate expects it running")
    if want.schedule is not None and (spec.get("schedule") or "").split() != want.schedule.split():
        out.append(f"schedule: estate {want.schedule!r}, live {spec.get('schedule')!r}")
    for field, key in (("included_namespaces", "includedNamespaces"), ("excluded_resources", "excludedResources")):
        expected = getattr(want, field)
        got = tmpl.get(key) or []
        if expected is not None and sorted(expected) != sorted(got):
            out.append(f"{field}: estate {sorted(expected)}, live {sorted(got)}")
    if want.ttl is not None and go_duration_seconds(want.ttl) != go_duration_seconds(tmpl.get("ttl")):
        out.append(f"ttl: estate {want.ttl!r}, live {tmpl.get('ttl')!r}")
    if want.storage_location is not None and want.storage_location != (tmpl.get("storageLocation") or "default"):
        out.append(f"storage_location: estate {want.storage_location!r}, live {tmpl.get('storageLocation')!r}")
    resources = {(r.get("name") or ""): r for r in ((tmpl.get("hooks") or {}).get("resources") or [])}
    for h in want.hooks:
        got = resources.get(h.name)
        if got is None:
            out.append(f"hooks: estate has the {h.phase}-hook {h.name!r}, live has "
                       f"{sorted(resources) or 'no backup hooks'}")
        elif not got.get(h.phase):
            phases = [p for p in ("pre", "post") if got.get(p)]
            out.append(f"hooks: {h.name!r} must be a {h.phase}-hook, live it has "
                       f"{' and '.join(phases) + ' commands' if phases else 'no commands'}")
    return out


def check_schedule(hook: VeleroHook, entry: Velero, want: VeleroSchedule) -> CheckResult:
    tgt = target(KIND, entry.name, want.name)
    live = hook.get(SCHEDULES, want.name)
    if live is None:
        return CheckResult("velero_schedule", Status.FAIL,
                           f"Schedule {want.name!r} does not exist in namespace {entry.namespace!r} "
                           f"(connection {entry.conn_id!r}; or Velero's CRDs are not installed there): create it "
                           f"(velero schedule create) or fix backups.velero[{entry.name}].schedules", tgt)
    drift = schedule_drift(want, live)
    if drift:
        return CheckResult("velero_schedule", Status.FAIL,
                           f"Schedule {want.name!r} drifts from the estate: {'; '.join(drift)}. Fix the Schedule "
                           f"or the estate", tgt, details={"drift": drift})
    phase = (live.get("status") or {}).get("phase")
    if phase and phase != "Enabled":
        return CheckResult("velero_schedule", Status.FAIL,
                           f"Schedule {want.name!r} is {phase} (validation errors: "
                           f"{(live.get('status') or {}).get('validationErrors') or 'none given'}), not Enabled", tgt)
    return CheckResult("velero_schedule", Status.PASS, f"Schedule {want.name!r} matches the estate", tgt)


def _counts(b: dict[str, Any]) -> str:
    st = b.get("status") or {}
    out = f"{int(st.get('errors') or 0)} error(s), {int(st.get('warnings') or 0)} warning(s)"
    if st.get("failureReason"):
        out += f", failure reason: {st['failureReason']}"
    if st.get("validationErrors"):
        out += f", validation errors: {'; '.join(st['validationErrors'])}"
    return out


def check_backup(hook: VeleroHook, entry: Velero, want: VeleroSchedule, now: datetime) -> CheckResult:
    tgt = target(KIND, entry.name, want.name)
    bound = want.max_backup_age_hours or entry.max_backup_age_hours
    backups = hook.backups_of(want.name)
    if not backups:
        return CheckResult("velero_backup", Status.FAIL,
                           f"Schedule {want.name!r} has no Backup at all (none labelled velero.io/schedule-name="
                           f"{want.name} in {entry.namespace!r}): check that the schedule runs "
                           f"(velero schedule describe {want.name})", tgt, threshold=bound)
    finished = [b for b in backups if (b.get("status") or {}).get("phase") in FINISHED]
    running = [b["metadata"]["name"] for b in backups[: backups.index(finished[0]) if finished else len(backups)]]
    note = f" (newer, still running: {', '.join(running)})" if running else ""
    if not finished:
        return CheckResult("velero_backup", Status.FAIL,
                           f"Schedule {want.name!r} has no finished Backup: {', '.join(running)} not finished "
                           f"yet", tgt, threshold=bound)
    b = finished[0]
    name, st = b["metadata"]["name"], b.get("status") or {}
    at = parse_time(st.get("completionTimestamp")) or backup_time(b)
    age_h = (now - at).total_seconds() / 3600 if at else None
    details = {"backup": name, "phase": st.get("phase"), "errors": int(st.get("errors") or 0),
               "warnings": int(st.get("warnings") or 0), "age_hours": age_h,
               "items": (st.get("progress") or {}).get("itemsBackedUp")}
    if st.get("phase") != "Completed":
        return CheckResult("velero_backup", Status.FAIL,
                           f"the newest Backup of {want.name!r}, {name}, is {st.get('phase')}: {_counts(b)}"
                           f"{note}; see velero backup describe {name} --details", tgt, age_h, bound, details)
    if age_h is None or age_h > bound:
        return CheckResult("velero_backup", Status.FAIL,
                           f"the newest Completed Backup of {want.name!r}, {name}, is "
                           f"{'of unknown age' if age_h is None else f'{age_h:.1f} h old'}, older than the bound "
                           f"of {bound:g} h{note}: the schedule has not backed up since; check Velero's logs",
                           tgt, age_h, bound, details)
    return CheckResult("velero_backup", Status.PASS,
                       f"the newest Backup of {want.name!r}, {name}, is Completed, {age_h:.1f} h old <= {bound:g} h "
                       f"({_counts(b)}){note}", tgt, age_h, bound, details)


def check_storage_location(hook: VeleroHook, entry: Velero, name: str) -> CheckResult:
    tgt = target(KIND, entry.name, name)
    bsl = hook.get(STORAGE_LOCATIONS, name)
    if bsl is None:
        return CheckResult("velero_storage_location", Status.FAIL,
                           f"BackupStorageLocation {name!r} does not exist in namespace {entry.namespace!r} "
                           f"(connection {entry.conn_id!r}; or Velero's CRDs are not installed there): create it "
                           f"or fix backups.velero[{entry.name}].storage_locations", tgt)
    st = bsl.get("status") or {}
    phase = st.get("phase") or "no phase yet"
    if phase != "Available":
        return CheckResult("velero_storage_location", Status.FAIL,
                           f"BackupStorageLocation {name!r} is {phase}, not Available: "
                           f"{st.get('message') or 'no message'} (last validated "
                           f"{st.get('lastValidationTime') or 'never'}); backups to it fail until it is fixed",
                           tgt, phase, "Available")
    return CheckResult("velero_storage_location", Status.PASS, f"BackupStorageLocation {name!r} is Available "
                       f"(last validated {st.get('lastValidationTime') or '?'})", tgt, phase, "Available")


def daily(entry: Velero, estate: Any = None, *, now: datetime | None = None) -> list[CheckResult]:
    """Every daily check of one Velero install (see the module docstring)."""
    now = now or datetime.now(UTC)
    hook = hook_for(entry)
    checks: list[tuple[str, str, Any]] = [
        *((s.name, "velero_schedule", lambda s=s: check_schedule(hook, entry, s)) for s in entry.schedules),
        *((s.name, "velero_backup", lambda s=s: check_backup(hook, entry, s, now)) for s in entry.schedules),
        *((n, "velero_storage_location", lambda n=n: check_storage_location(hook, entry, n))
          for n in entry.storage_locations)]
    out: list[CheckResult] = []
    for name, check, run in checks:
        try:
            out.append(run())
        except VeleroUnreachable as e:
            return [*out, CheckResult("velero_connection", Status.FAIL, str(e), target(KIND, entry.name))]
        except DrillError as e:
            out.append(CheckResult(check, Status.FAIL, str(e), target(KIND, entry.name, name)))
    return out
