"""The backup estate beside pgBackRest: Velero, AWS Backup, S3 Object Lock, and the 3-2-1-1-0 scorecard.

One module per system (``velero``, ``aws_backup``, ``object_lock``), each with
``daily(entry, estate) -> list[CheckResult]``: the checks the daily verification runs on one
entry of the estate's ``backups:`` section, through the system's hook. A resource the account
does not have, or one the connection may not read, is a failed check naming the resource, never
an exception. Every result's ``target`` starts with ``<system>/<entry name>``: the scorecard
(``scorecard``) finds each system's evidence by it.
"""

from __future__ import annotations

import importlib
import logging

from drdrill.core.checks import CheckResult, Status
from drdrill.core.estate import Estate, load_estate

log = logging.getLogger(__name__)

SYSTEMS = ("velero", "aws_backup", "object_lock")


def target(kind: str, name: str, *rest: str) -> str:
    """``velero/prod-k8s`` or ``aws_backup/prod/dr_vault``: what a result of one entry is about."""
    return "/".join([kind, name, *rest])


def daily(kind: str, estate: Estate | None = None) -> list[CheckResult]:
    """Every entry of ``backups.<kind>`` checked; an entry whose checks crash is one failed check naming it."""
    if kind not in SYSTEMS:
        raise ValueError(f"unknown backup system {kind!r}; one of {', '.join(SYSTEMS)}")
    estate = estate or load_estate()
    entries = getattr(estate.backups, kind)
    if not entries:
        return []
    mod = importlib.import_module(f"{__name__}.{kind}")
    out: list[CheckResult] = []
    for e in entries:
        try:
            results = mod.daily(e, estate)
        except Exception as exc:  # noqa: BLE001 - one entry's crash must not hide the others' checks
            log.exception("%s %s: checks crashed", kind, e.name)
            results = [CheckResult(kind, Status.FAIL, f"{kind} {e.name}: the checks could not run: "
                                   f"{type(exc).__name__}: {exc}", target(kind, e.name))]
        for r in results:
            (log.warning if r.failed else log.info)("%s", r.line())
        out += results
    return out
