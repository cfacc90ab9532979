"""The journal: the evidence of one drill run, written once and never edited.

Every drill task is wrapped by `step`, which records its status and timestamps (also when it
fails) as the XCom ``drill_step``. The drill's last task gathers those records and the task
results into one JSON document and writes it through Airflow's ``ObjectStoragePath`` to the
estate's journal location (a local directory in the sandbox, ``s3://`` in production).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from drdrill.core.errors import DrillError
from drdrill.core.paths import INSTALLED, PROJECT_ROOT

log = logging.getLogger(__name__)

STEP_KEY = "drill_step"
RESULTS_KEY = "check_results"  # CheckResults of a step that failed (DrillFailed.results)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def step(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record a task's status, timestamps and error (if any) for the journal, then re-raise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        rec: dict[str, Any] = {"task_id": ti.task_id, "map_index": ti.map_index, "started_at": _now()}
        t0 = time.monotonic()
        deferred = False
        try:
            out = fn(*args, **kwargs)
        except BaseException as e:
            from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

            if isinstance(e, TaskDeferred):  # not an outcome: the resumed half records the step
                deferred = True
            elif isinstance(e, AirflowSkipException):  # a decision, not a failure
                rec.update(status="skipped", reason=str(e)[:1000])
            else:
                rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:4000])
                if getattr(e, "results", None):  # the checks behind the failure, for the journal
                    ti.xcom_push(key=RESULTS_KEY, value=e.results)
            raise
        else:
            rec["status"] = "success"
            return out
        finally:
            if not deferred:
                rec.update(ended_at=_now(), seconds=round(time.monotonic() - t0, 3))
                ti.xcom_push(key=STEP_KEY, value=rec)

    return wrapper


class StepsOfTask:
    """Several steps done by one task, each recorded with its own id, status and timestamps.

    For a path where a scheduling hop between two tasks would cost more than the steps themselves
    (the failover's fault -> promote -> writable -> DNS switch): one task, and still one journal step
    per runbook step, so the phase split and the timeline stay. The task's step record is the list
    (`gather_steps` reads it); planned steps that were not reached are recorded ``not run``::

        with StepsOfTask(["failover.promote", "dns_switch.switch"]) as steps:
            with steps.step("promote"):
                ...
    """

    def __init__(self, step_ids: list[str]) -> None:
        from airflow.sdk import get_current_context

        self.ti = get_current_context()["ti"]
        self.step_ids = list(step_ids)
        self.records: dict[str, dict[str, Any]] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Time one step (its id, or the name after the group: ``promote``); an exception marks it failed
        (and is raised again). Yields the record, for notes."""
        found = [sid for sid in self.step_ids if name in (sid, sid.rsplit(".", 1)[-1])]
        if len(found) != 1:
            raise ValueError(f"step {name!r} was not planned for this task ({self.step_ids})")
        step_id = found[0]
        rec: dict[str, Any] = {"task_id": step_id, "map_index": self.ti.map_index, "started_at": _now(),
                               "in_task": self.ti.task_id}
        self.records[step_id] = rec
        t0 = time.monotonic()
        try:
            yield rec
        except BaseException as e:
            rec.update(status="failed", error=f"{type(e).__name__}: {e}"[:4000])
            if getattr(e, "results", None):
                self.ti.xcom_push(key=RESULTS_KEY, value=e.results)
            raise
        else:
            rec.setdefault("status", "success")
        finally:
            rec.update(ended_at=_now(), seconds=round(time.monotonic() - t0, 3))

    def publish(self, key: str, value: Any) -> None:
        """An XCom at once, while the task still runs (e.g. when the outage began, for the RTO watch)."""
        self.ti.xcom_push(key=key, value=value)

    def __enter__(self) -> StepsOfTask:
        return self

    def __exit__(self, *_: Any) -> None:
        recs = [self.records.get(sid) or {"task_id": sid, "status": "not run", "in_task": self.ti.task_id}
                for sid in self.step_ids]
        self.ti.xcom_push(key=STEP_KEY, value=recs)


def record_step(context: Any, task_id: str, status: str, started: float, error: str | None = None) -> None:
    """The journal's step record for a sensor (it is not wrapped by `drdrill.core.journal.step`)."""
    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

    rec = {"task_id": task_id, "map_index": -1, "status": status, "started_at": iso(started),
           "ended_at": iso(time.time()), "seconds": round(time.time() - started, 3)}
    if error:
        rec["error"] = error
    context["ti"].xcom_push(key=STEP_KEY, value=rec)


def code_version() -> str:
    """The git commit the DAGs run from (``unknown`` outside a git checkout).

    Installed as a package, the version of the installed drdrill distribution: the git
    repository around an installation, if any, is not the one the code came from.
    """
    if INSTALLED:
        try:
            return f"drdrill=={importlib.metadata.version('drdrill')}"
        except importlib.metadata.PackageNotFoundError:
            return "unknown"
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def gather_steps(ti: Any, task_ids: list[str], parts: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Step records of every task (mapped ones per index); tasks that never ran say so.

    A task that records several steps (`StepsOfTask`) gives one record per step; ``parts`` names
    them for a task that never ran, so each step is listed ``not run``. A task without a step
    record (an operator that is not ours) is looked up in Airflow: a failed one is a failed step,
    so it can never pass unnoticed.
    """
    steps: list[dict[str, Any]] = []
    missing = []
    for tid in task_ids:
        recs = ti.xcom_pull(task_ids=[tid], key=STEP_KEY)
        recs = [r for v in (recs or []) if v for r in (v if isinstance(v, list) else [v])]
        if not recs:
            missing.append(tid)
            recs = [{"task_id": sid, "status": "not run", "in_task": tid} for sid in (parts or {}).get(tid, [])]
        steps.extend(recs or [{"task_id": tid, "status": "not run"}])
    if missing:
        try:
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=missing).get(ti.run_id, {})
        except Exception as e:  # noqa: BLE001 - evidence of what could be read is still written
            log.warning("could not read the states of %s: %s", missing, e)
            states = {}
        for st in steps:
            state = str(states.get(st.get("in_task", st["task_id"]), "") or "")
            if st.get("status") == "not run" and state == "failed":
                st.update(status="failed", error="the task failed without a step record; read its log")
            elif st.get("status") == "not run" and state == "skipped":
                st.update(status="skipped")
    return steps


def storage(url: str, conn_id: str | None):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def journal_path(location: str, conn_id: str | None, dag_id: str, run_id: str):
    from drdrill.core.scratch import run_tag

    return storage(location, conn_id) / dag_id / f"{run_tag(run_id)}.json"


def listed(location: str, conn_id: str | None, dag_id: str) -> set[str]:
    """Every journal of ``dag_id``, not its attachments (``<tag>.gx.json``, ``<tag>.timeline.md``: a word
    between the run's tag and the extension; a tag's own dot is followed by digits, as in a run id's
    microseconds ``...T10_00_00.490118_00_00``)."""
    d = storage(location, conn_id) / dag_id
    if not d.exists():
        return set()
    return {str(p) for p in d.iterdir() if is_journal_name(p.name)}


_ATTACHMENT = re.compile(r"\.[A-Za-z][A-Za-z_-]*\.json$")


def is_journal_name(name: str) -> bool:
    """A journal's file name, not an attachment's (see `listed`)."""
    return name.endswith(".json") and not _ATTACHMENT.search(name)


def read(path: str, conn_id: str | None) -> dict[str, Any]:
    return json.loads(storage(path, conn_id).read_text())


WRITE_ATTEMPTS = 5
WRITE_BACKOFF_SECONDS = 1.0  # doubled after every failed attempt: 1 + 2 + 4 + 8 s in all


def write(location: str, conn_id: str | None, doc: dict[str, Any], attachments: dict[str, Any] | None = None, *,
          attempts: int = WRITE_ATTEMPTS, backoff: float = WRITE_BACKOFF_SECONDS) -> str:
    """Write the journal (and attachments beside it: the GX result, a timeline.md); never overwrite.

    A transient storage error (S3 throttling, a network blip) is retried with backoff: losing a
    run's evidence is worse than a slow journal task. When every attempt fails, the error says
    so and the run fails loudly. A retry that finds the journal it wrote itself is a success.
    """
    path = journal_path(location, conn_id, doc["drill"], doc["run_id"])
    if path.exists():
        raise DrillError(f"journal {path} already exists; journals are written once and never overwritten")
    body = json.dumps(_with_attachment_paths(path, doc, attachments), indent=2, default=str)
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            _put(path, body, attachments)
            log.info("journal written to %s", path)
            return str(path)
        except DrillError:
            raise
        except Exception as e:  # noqa: BLE001 - storage errors come from fsspec, s3fs, botocore, the OS
            last = e
            if attempt < attempts:
                delay = backoff * 2 ** (attempt - 1)
                log.warning("writing journal %s failed (attempt %d of %d: %s: %s); retrying in %.1fs", path, attempt,
                            attempts, type(e).__name__, e, delay)
                time.sleep(delay)
    raise DrillError(f"could not write the journal to {path} after {attempts} attempts ({type(last).__name__}: "
                     f"{last}); this run's evidence is NOT stored. Check the journal location and its connection, "
                     f"then rerun the drill.") from last


def _with_attachment_paths(path: Any, doc: dict[str, Any], attachments: dict[str, Any] | None) -> dict[str, Any]:
    for name, content in (attachments or {}).items():
        doc.setdefault("attachments", {})[name] = str(_attachment_path(path, name, content))
    return doc


def _attachment_path(path: Any, name: str, content: Any) -> Any:
    # A text attachment keeps its own extension (timeline.md); anything else is JSON.
    suffix = name if isinstance(content, str) and "." in name else f"{name}.json"
    return path.parent / path.name.replace(".json", f".{suffix}")


def _put(path: Any, body: str, attachments: dict[str, Any] | None) -> None:
    """One attempt: attachments first, the journal last (its presence means the run is recorded)."""
    if path.exists():
        if path.read_text() == body:  # an earlier attempt wrote it and then failed to hear back
            return
        raise DrillError(f"journal {path} already exists; journals are written once and never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, content in (attachments or {}).items():
        with _attachment_path(path, name, content).open("w") as f:
            if isinstance(content, str):
                f.write(content)
            else:
                json.dump(content, f, indent=1, default=str)
    with path.open("w") as f:
        f.write(body)


def base_document(context: dict[str, Any], *, estate: Any, cluster: str | None) -> dict[str, Any]:
    """The part of every journal that does not depend on the drill."""
    dr = context["dag_run"]
    return {
        "drill": context["dag"].dag_id,
        "run_id": dr.run_id,
        "run_type": str(getattr(dr, "run_type", "")),
        "run_after": str(getattr(dr, "run_after", "")),
        "params": dict(context["params"]),
        "code_version": code_version(),
        "estate": {"name": estate.name, "file": str(estate.source)},
        "cluster": cluster,
        "written_at": _now(),
    }


def finish(context: dict[str, Any], *, task_ids: list[str], results: list[Any], cluster: str | None,
           parts: dict[str, list[str]] | None = None,
           extra: dict[str, Any] | None = None, attachments: dict[str, Any] | None = None,
           attachments_for: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
           action: str | None = None) -> dict[str, Any]:
    """Write the drill's journal, then fail the run if any step or check failed.

    Called by every drill's last task (trigger rule ``all_done``), so a journal exists for
    failed runs too. Returns the journal document for passing runs. With ``action`` (the task that
    acts), a run where nothing failed and that task did not run because a guard skipped the run
    (outside the window, the kill switch, a busy target) is journalled ``skipped``, with the reason.
    """
    from drdrill.core.checks import CheckResult, Status, summarize
    from drdrill.core.errors import DrillFailed
    from drdrill.core.estate import load_estate

    estate = load_estate()  # an invalid estate fails here with its own clear message
    steps = gather_steps(context["ti"], task_ids, parts)
    checks: list[CheckResult] = list(results)
    for st in steps:
        if st.get("status") == "failed":
            checks.append(CheckResult(f"step.{st['task_id']}", Status.FAIL, st.get("error", "failed")))
            if st.get("map_index", -1) == -1:  # the checks behind the failure (DrillFailed.results), listed too
                behind = context["ti"].xcom_pull(task_ids=st["task_id"], key=RESULTS_KEY) or []
                checks += [CheckResult.from_dict(d) for d in behind]
    not_run = [st["task_id"] for st in steps if st.get("status") == "not run"]
    failed = [c for c in checks if c.failed]
    doc = base_document(context, estate=estate, cluster=cluster)
    status = "failed" if failed else "passed"
    acted = [st for st in steps if st["task_id"] == action and st.get("status") in ("success", "failed")]
    skips = [st for st in steps if st.get("status") == "skipped" and st.get("reason")]
    if action and not failed and not acted and skips:
        status = "skipped"
        doc["skipped_reason"] = f"{skips[0]['task_id']}: {skips[0]['reason']}"
    doc.update(status=status, steps=steps, not_run=not_run,
               results=[c.to_dict() for c in checks], failures=[c.line() for c in failed], **(extra or {}))
    if attachments_for:  # built from the finished document (e.g. the timeline of a failover)
        attachments = {**(attachments or {}), **attachments_for(doc)}
    path = write(estate.journal.location, estate.journal.conn_id, doc, attachments)
    summary = summarize(checks)
    if failed:
        raise DrillFailed(f"{doc['drill']} failed ({len(failed)} failed check(s)); journal: {path}\n{summary}")
    if status == "skipped":
        log.info("%s skipped (%s); journal: %s", doc["drill"], doc["skipped_reason"], path)
        return {"status": "skipped", "reason": doc["skipped_reason"], "journal": path}
    log.info("%s passed; journal: %s\n%s", doc["drill"], path, summary)
    return {"status": "passed", "journal": path}
