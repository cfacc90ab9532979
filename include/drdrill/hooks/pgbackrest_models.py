"""Parse pgBackRest 2.45 ``info`` and ``verify`` output and turn it into checks.

``pgbackrest info --output=json`` is parsed into typed models straight from its nested shape (pydantic
alias paths), so a changed or truncated document fails loudly with the JSON path that is wrong.

``pgbackrest verify`` exits 0 even when it finds corrupt backups or WAL, so the text report is the only
truth. Only the report's own lines are read: they sit at fixed indents (``stanza:``/``status:`` at
column 0, items at 2, counters at 4). Log lines that may be interleaved (``--log-level-console``) and the
copy of the report that pgBackRest also logs are recognised and skipped, except the per-file
``invalid checksum '...'`` lines, which are kept because they name the damaged files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import AliasPath, BaseModel, ConfigDict, Field, ValidationError

from drdrill.core.checks import CheckResult, Status, at_most
from drdrill.core.errors import CommandError, PreflightError

BackupType = Literal["full", "diff", "incr"]
BACKUP_TYPES: tuple[str, ...] = ("full", "diff", "incr")

# pgBackRest stanza/repo status codes (src/command/info/info.c), used to pick a next step.
_STATUS_HINTS: dict[int, str] = {
    1: "the stanza path is missing: run `pgbackrest stanza-create` for it, or fix repo path/stanza name "
       "in pgbackrest.conf",
    2: "there is no valid backup: run a full backup",
    3: "backup.info or archive.info is missing: check the repository storage, then run stanza-create "
       "(or stanza-upgrade) as the pgBackRest docs describe",
    4: "the repos disagree: see the per-repo checks for the repo that is not ok",
    5: "the database system id or version differs across repos: a repo belongs to another cluster; "
       "fix the config or run stanza-upgrade",
    6: "the requested backup set was not found: check the label",
    99: "pgBackRest could not read the repo: run `pgbackrest info` by hand and read its error",
}
_GENERIC_HINT = "run `pgbackrest info --stanza=<stanza>` by hand and read the repository status"


class _Model(BaseModel):
    # populate_by_name lets tests and callers build models by field name, while parsing uses the
    # pgBackRest JSON shape through the aliases; extra keys (cipher, db, backrest...) are ignored.
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class RepoStatus(_Model):
    """Status of one repository for a stanza (``repo[]`` in the info JSON)."""

    key: int
    code: int = Field(validation_alias=AliasPath("status", "code"))
    message: str = Field(validation_alias=AliasPath("status", "message"))


class ArchiveRange(_Model):
    """The WAL range archived in one repo for one archive id (``archive[]``); min/max are None when empty."""

    repo_key: int = Field(validation_alias=AliasPath("database", "repo-key"))
    id: str
    min: str | None = None
    max: str | None = None

    @property
    def db_id(self) -> int:
        """The database history id after the dash in e.g. ``15-1``; newer clusters have higher ids."""
        try:
            return int(self.id.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return 0


class BackupInfo(_Model):
    """One backup set (``backup[]``). Times are UTC; size fields are bytes and optional."""

    label: str
    type: BackupType
    start: datetime = Field(validation_alias=AliasPath("timestamp", "start"))
    stop: datetime = Field(validation_alias=AliasPath("timestamp", "stop"))
    repo_key: int = Field(validation_alias=AliasPath("database", "repo-key"))
    # True when pgBackRest hit errors during the backup, e.g. invalid page checksums in PGDATA.
    error: bool = False
    lsn_start: str | None = Field(default=None, validation_alias=AliasPath("lsn", "start"))
    lsn_stop: str | None = Field(default=None, validation_alias=AliasPath("lsn", "stop"))
    wal_start: str | None = Field(default=None, validation_alias=AliasPath("archive", "start"))
    wal_stop: str | None = Field(default=None, validation_alias=AliasPath("archive", "stop"))
    size: int | None = Field(default=None, validation_alias=AliasPath("info", "size"))
    delta: int | None = Field(default=None, validation_alias=AliasPath("info", "delta"))
    repo_size: int | None = Field(default=None, validation_alias=AliasPath("info", "repository", "size"))
    repo_delta: int | None = Field(default=None, validation_alias=AliasPath("info", "repository", "delta"))
    prior: str | None = None
    reference: list[str] | None = None


class StanzaInfo(_Model):
    """One stanza of ``pgbackrest info --output=json``."""

    name: str
    status_code: int = Field(validation_alias=AliasPath("status", "code"))
    status_message: str = Field(validation_alias=AliasPath("status", "message"))
    backup_lock_held: bool = Field(default=False, validation_alias=AliasPath("status", "lock", "backup", "held"))
    # Required (no default) on purpose: pgBackRest 2.45 always emits these lists, so a missing one means the
    # output is not what this parser understands, and silently checking nothing would look healthy.
    repos: list[RepoStatus] = Field(validation_alias="repo")
    archives: list[ArchiveRange] = Field(validation_alias="archive")
    backups: list[BackupInfo] = Field(validation_alias="backup")

    def repo_keys(self) -> list[int]:
        """Keys of the repos pgBackRest reported for this stanza, ascending."""
        return sorted({r.key for r in self.repos})

    def newest(self, type: str, repo_key: int) -> BackupInfo | None:
        """The backup of exactly this type on this repo with the latest stop time, or None."""
        found = [b for b in self.backups if b.type == type and b.repo_key == repo_key]
        return max(found, key=lambda b: b.stop, default=None)

    def oldest(self, repo_key: int) -> BackupInfo | None:
        """The backup (any type) on this repo with the earliest stop time, or None."""
        found = [b for b in self.backups if b.repo_key == repo_key]
        return min(found, key=lambda b: b.stop, default=None)


def parse_info(json_text: str) -> list[StanzaInfo]:
    """Parse ``pgbackrest info --output=json``; raise `CommandError` naming what is wrong if it is not that."""
    try:
        raw = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"pgbackrest info output is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}; "
            f"it starts with {json_text[:80]!r}). Expected the output of `pgbackrest info --output=json`: "
            "check that --output=json was passed and that no log lines go to stdout "
            "(use --log-level-console=warn or lower).", output=json_text[:2000]) from exc
    if not isinstance(raw, list):
        raise CommandError(
            f"pgbackrest info JSON is a {type(raw).__name__}, expected a list of stanzas. Check that the "
            "command was `pgbackrest info --output=json` (pgBackRest 2.x).", output=json_text[:2000])
    stanzas = []
    for i, item in enumerate(raw):
        try:
            stanzas.append(StanzaInfo.model_validate(item))
        except ValidationError as exc:
            name = item.get("name", "?") if isinstance(item, dict) else "?"
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            raise CommandError(
                f"pgbackrest info JSON, stanza #{i} ({name!r}) does not have the expected shape: {problems}. "
                "Expected pgBackRest 2.45 `info --output=json` fields (name, status.code, repo[], archive[], "
                "backup[] with label/type/timestamp/database.repo-key). Check the pgBackRest version and "
                "that the output was not truncated.", output=json_text[:2000]) from exc
    return stanzas


def merge_info(stanzas: list[StanzaInfo]) -> StanzaInfo:
    """One stanza from several ``info --repo=N`` runs of it, as ``info`` without ``--repo`` reports it.

    The stanza status is the repos' common status, or code 4 ("different across repos") when they
    differ, as pgBackRest computes it; repos, archives and backups are the union.
    """
    if not stanzas:
        raise ValueError("merge_info needs at least one stanza")
    codes = {s.status_code for s in stanzas}
    code, message = ((stanzas[0].status_code, stanzas[0].status_message) if len(codes) == 1
                     else (4, "different across repos"))
    return StanzaInfo(name=stanzas[0].name, status_code=code, status_message=message,
                      backup_lock_held=any(s.backup_lock_held for s in stanzas),
                      repos=[r for s in stanzas for r in s.repos], archives=[a for s in stanzas for a in s.archives],
                      backups=[b for s in stanzas for b in s.backups])


def select_stanza(stanzas: list[StanzaInfo], name: str) -> StanzaInfo:
    """The stanza called ``name``; `CommandError` listing the ones found when it is absent."""
    for s in stanzas:
        if s.name == name:
            return s
    raise CommandError(
        f"stanza {name!r} is not in the pgbackrest info output (found: {[s.name for s in stanzas]}). "
        "Check the stanza name in the estate and in pgbackrest.conf.")


def evaluate_info(stanza: StanzaInfo, *, max_age_hours: dict[str, float], now: datetime,
                  target: str, repo_max_age_hours: dict[int, dict[str, float]] | None = None) -> list[CheckResult]:
    """Checks for one stanza: stanza status, then per repo its status, backup ages, error flags and WAL range.

    ``max_age_hours`` maps a backup type (full/diff/incr) to the maximum age in hours of the newest backup
    of *exactly* that type on each repo: a newer full does not satisfy a diff threshold, because the drill
    checks that each schedule actually ran. Types without a threshold are not checked.
    ``repo_max_age_hours`` replaces those thresholds for the repos it names (e.g. an offsite repo
    that only receives full backups).
    """
    overrides = repo_max_age_hours or {}
    unknown = sorted({t for m in (max_age_hours, *overrides.values()) for t in m} - set(BACKUP_TYPES))
    if unknown:
        raise PreflightError(f"max_age_hours has unknown backup type(s) {unknown}; expected keys among "
                             f"{list(BACKUP_TYPES)}. Fix the threshold names in the estate.")
    if now.tzinfo is None:
        raise PreflightError(f"now={now.isoformat()} has no timezone; expected an aware datetime (UTC) "
                             "because backup times are UTC. Pass e.g. datetime.now(UTC).")
    results = [_stanza_status(stanza, target)]
    for key in stanza.repo_keys():
        where = f"{target}/repo{key}"
        results.append(_repo_status(stanza, key, where))
        limits = overrides.get(key, max_age_hours)
        for btype in BACKUP_TYPES:
            if btype in limits:
                results.append(_backup_age(stanza, key, btype, limits[btype], now, where))
        results.append(_backup_errors(stanza, key, where))
        results.append(_wal_range(stanza, key, where))
    return results


def _stanza_status(stanza: StanzaInfo, target: str) -> CheckResult:
    if stanza.status_code == 0:
        return CheckResult("stanza_status", Status.PASS, f"stanza '{stanza.name}' status ok (code 0)", target,
                           0, 0)
    hint = _STATUS_HINTS.get(stanza.status_code, _GENERIC_HINT)
    return CheckResult("stanza_status", Status.FAIL,
                       f"stanza '{stanza.name}' status is code {stanza.status_code} "
                       f"({stanza.status_message}), expected code 0 (ok). Next: {hint}.",
                       target, stanza.status_code, 0)


def _repo_status(stanza: StanzaInfo, key: int, where: str) -> CheckResult:
    repo = next(r for r in stanza.repos if r.key == key)
    if repo.code == 0:
        return CheckResult("repo_status", Status.PASS, f"repo{key} of stanza '{stanza.name}' status ok",
                           where, 0, 0)
    hint = _STATUS_HINTS.get(repo.code, _GENERIC_HINT)
    return CheckResult("repo_status", Status.FAIL,
                       f"repo{key} of stanza '{stanza.name}' status is code {repo.code} ({repo.message}), "
                       f"expected code 0 (ok). Next: {hint}.", where, repo.code, 0)


def _backup_age(stanza: StanzaInfo, key: int, btype: str, max_hours: float, now: datetime,
                where: str) -> CheckResult:
    name = f"backup_age.{btype}"
    newest = stanza.newest(btype, key)
    if newest is None:
        return CheckResult(name, Status.FAIL,
                           f"no {btype} backup found on repo{key} of stanza '{stanza.name}', expected one at "
                           f"most {max_hours:g}h old. Run `pgbackrest --stanza={stanza.name} --repo={key} "
                           f"--type={btype} backup` and check why its schedule has not produced one.",
                           where, None, max_hours)
    age = round((now - newest.stop).total_seconds() / 3600, 3)
    result = at_most(name, age, max_hours, unit="h", target=where,
                     what=f"newest {btype} backup {newest.label} on repo{key} is aged",
                     fix=f"Run a {btype} backup to repo{key} now and find out why the scheduled one did not "
                         "run (scheduler, pgBackRest log, lock held by a stuck backup).")
    return CheckResult(result.name, result.status, result.message, where, age, max_hours,
                       {"label": newest.label, "stop": newest.stop.isoformat()})


def _backup_errors(stanza: StanzaInfo, key: int, where: str) -> CheckResult:
    flagged = [b.label for b in stanza.backups if b.repo_key == key and b.error]
    if not flagged:
        return CheckResult("backup_errors", Status.PASS, f"no backup on repo{key} has the error flag", where,
                           0, 0)
    return CheckResult("backup_errors", Status.FAIL,
                       f"{len(flagged)} backup(s) on repo{key} have errors detected during backup: "
                       f"{', '.join(flagged)}; expected none. Usually invalid page checksums in PGDATA: "
                       "read the backup log for 'invalid page checksum', repair the relation "
                       "(pg_amcheck, restore), then take a new full backup and expire the flagged sets.",
                       where, len(flagged), 0, {"labels": flagged})


def _wal_range(stanza: StanzaInfo, key: int, where: str) -> CheckResult:
    archives = sorted((a for a in stanza.archives if a.repo_key == key), key=lambda a: a.db_id)
    details = {"archives": [a.model_dump() for a in archives]}
    # Only the newest archive id matters for recovery of the current cluster; older ids are history.
    current = archives[-1] if archives else None
    if current is not None and current.min and current.max:
        return CheckResult("wal_archive_range", Status.PASS,
                           f"repo{key} archive {current.id} holds WAL {current.min} to {current.max}", where,
                           f"{current.min}/{current.max}", None, details)
    found = f"archive {current.id} has no WAL (min/max empty)" if current else "no archive id at all"
    return CheckResult("wal_archive_range", Status.FAIL,
                       f"repo{key} of stanza '{stanza.name}': {found}; expected a min/max WAL range for the "
                       f"current archive. Check archive_command and run `pgbackrest --stanza={stanza.name} "
                       "check` to see whether WAL reaches this repo.", where, None, None, details)


# ---- verify ---------------------------------------------------------------------------------------------

VerifyKind = Literal["backup", "archive", "repo"]


class VerifyProblem(_Model):
    """One invalid item found by verify.

    ``kind`` is ``backup`` (name = backup label), ``archive`` (name = archive id such as ``15-1``) or
    ``repo`` when verify could not check the repo at all (e.g. "No usable backup.info file").
    ``files`` lists the damaged files when the output includes pgBackRest's log lines.
    """

    repo_key: int | None
    kind: VerifyKind
    name: str
    detail: str
    checked: int | None = None
    valid: int | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)


class VerifyRepoResult(_Model):
    """The report block of one verify run: its repo, stanza, status line and raw report lines."""

    repo_key: int | None
    stanza: str
    status: str
    lines: list[str]


class VerifyReport(_Model):
    """Everything verify reported, possibly for several repos (see `merge_verify`)."""

    ok: bool
    problems: list[VerifyProblem]
    repos: list[VerifyRepoResult]


# Console log lines: "2026-11-25 12:56:29.885 P01   INFO: msg", or "WARN: msg" without a timestamp.
_LOG_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} )?(?:P\d+ +)?"
                       r"(?:ERROR|WARN|INFO|DETAIL|DEBUG|TRACE)(?: \[\d+\])?: (?P<msg>.*)$")
_BEGIN_REPO = re.compile(r"verify command begin .*?--repo=(\d+)")
_INVALID_FILE = re.compile(r"^(?P<why>file missing|invalid checksum|invalid size|invalid result) '?(?P<path>[^' :]+)")
_STANZA = re.compile(r"^stanza: (\S+)$")
_STATUS = re.compile(r"^status: (\S+)$")
_ARCHIVE = re.compile(r"^  archiveId: (\S+), total WAL checked: (\d+), total valid WAL: (\d+)$")
_BACKUP = re.compile(r"^  backup: (\S+), status: (.+), total files checked: (\d+), total valid files: (\d+)$")
_COUNTERS = re.compile(r"^    ((?:missing|checksum invalid|size invalid|other): \d+(?:, )?)+$")
_COUNTER = re.compile(r"(missing|checksum invalid|size invalid|other): (\d+)")
_NONE_FOUND = re.compile(r"^  (archiveId|backup): none found$")


def parse_verify(text: str, *, repo_key: int | None = None) -> VerifyReport:
    """Parse ``pgbackrest verify --output=text --verbose`` output (stdout, optionally with log lines mixed in).

    Verify checks one repo per run: the default (lowest) repo or the one given with ``--repo``. The text does
    not name it, so pass ``repo_key``; otherwise it is taken from a ``verify command begin ... --repo=N`` log
    line when present, else left as None.
    """
    blocks: list[dict] = []
    bad_files: list[tuple[str, str]] = []  # (reason, repo-relative path) from log lines
    current_repo = repo_key
    in_log = False
    for line in text.splitlines():
        log = _LOG_LINE.match(line)
        if log:
            in_log = True
            msg = log["msg"]
            begin = _BEGIN_REPO.search(msg)
            if begin and repo_key is None:
                current_repo = int(begin[1])
            bad = _INVALID_FILE.match(msg)
            if bad:
                bad_files.append((bad["why"], bad["path"]))
            continue
        # A log message continues on indented lines (the logged copy of the report, retry notes). The report
        # itself is written in one piece starting with "stanza:" at column 0, so it never continues a log line.
        if in_log and line[:1].isspace():
            continue
        in_log = False
        if m := _STANZA.match(line):
            blocks.append({"repo": current_repo, "stanza": m[1], "status": None, "lines": [line]})
        elif blocks:
            block = blocks[-1]
            block["lines"].append(line)
            if block["status"] is None and (m := _STATUS.match(line)):
                block["status"] = m[1]
    if not blocks or any(b["status"] is None for b in blocks):
        raise CommandError(
            f"found no complete 'stanza:'/'status:' report in the pgbackrest verify output "
            f"({len(text)} characters, starting {text[:80]!r}). Expected the report of `pgbackrest verify "
            "--output=text --verbose`; without --verbose a clean run prints nothing, so an empty output proves "
            "nothing. Rerun with --output=text --verbose.", output=text[:2000])

    problems: list[VerifyProblem] = []
    for block in blocks:
        problems.extend(_block_problems(block, bad_files))
    repos = [VerifyRepoResult(repo_key=b["repo"], stanza=b["stanza"], status=b["status"], lines=b["lines"])
             for b in blocks]
    return VerifyReport(ok=not problems and all(r.status == "ok" for r in repos), problems=problems, repos=repos)


def _block_problems(block: dict, bad_files: list[tuple[str, str]]) -> list[VerifyProblem]:
    repo = block["repo"]
    problems: list[VerifyProblem] = []
    item: dict | None = None  # the archive/backup line the next counter line belongs to

    def close() -> None:
        if item is None:
            return
        counts = {k: v for k, v in item["counts"].items() if v}
        broken = (item["checked"] != item["valid"] or bool(counts)
                  or item.get("status") not in (None, "valid", "in-progress"))
        if not broken:
            return
        parts = [f"{k}: {v}" for k, v in counts.items()]
        if item.get("status") not in (None, "valid", "invalid"):
            parts.insert(0, f"status: {item['status']}")
        what = "WAL" if item["kind"] == "archive" else "files"
        parts.append(f"{item['valid']} of {item['checked']} {what} valid")
        # Log paths start with the archive id or the backup label, which ties each file to its item.
        files = [f"{why}: {path}" for why, path in bad_files if path.split("/", 1)[0] == item["name"]]
        problems.append(VerifyProblem(repo_key=repo, kind=item["kind"], name=item["name"],
                                      detail=", ".join(parts), checked=item["checked"], valid=item["valid"],
                                      counts=counts, files=files))

    for line in block["lines"][2:]:
        if m := _ARCHIVE.match(line):
            close()
            item = {"kind": "archive", "name": m[1], "checked": int(m[2]), "valid": int(m[3]), "counts": {}}
        elif m := _BACKUP.match(line):
            close()
            item = {"kind": "backup", "name": m[1], "status": m[2], "checked": int(m[3]), "valid": int(m[4]),
                    "counts": {}}
        elif _COUNTERS.match(line) and item is not None:
            item["counts"] = {k: int(v) for k, v in _COUNTER.findall(line)}
        elif _NONE_FOUND.match(line) or not line.strip():
            continue
        else:
            # Repo-level errors ("No usable backup.info file", history mismatch...) have no counters.
            close()
            item = None
            problems.append(VerifyProblem(repo_key=repo, kind="repo", name=block["stanza"], detail=line.strip()))
    close()
    if block["status"] != "ok" and not problems:
        problems.append(VerifyProblem(repo_key=repo, kind="repo", name=block["stanza"],
                                      detail=f"status {block['status']} without an itemised problem"))
    return problems


def merge_verify(reports: Iterable[VerifyReport]) -> VerifyReport:
    """One report from several verify runs (one per repo), for `evaluate_verify`."""
    reports = list(reports)
    return VerifyReport(ok=all(r.ok for r in reports), problems=[p for r in reports for p in r.problems],
                        repos=[x for r in reports for x in r.repos])


# Next steps by kind of problem; a damaged file in the repo means the storage itself is suspect.
_VERIFY_FIX = {
    "backup": "Run a new full backup to this repo and expire the damaged set(s) (diff/incr sets based on a damaged "
              "set may reuse its damaged files); investigate the repository storage (disk, filesystem, object "
              "store) before trusting any other backup there.",
    "archive": "Point-in-time recovery cannot cross the damaged WAL: take a new full backup so recovery does "
               "not need it, and investigate the repository storage.",
    "repo": "Verify could not read this repo: check the repo path and stanza name with `pgbackrest info`, "
            "and restore backup.info/archive.info from their .copy files or recreate the stanza.",
}


def evaluate_verify(report: VerifyReport, *, target: str) -> list[CheckResult]:
    """One ``verify`` check per repo in the report: pass when clean, else name every invalid backup/archive."""
    results = []
    for repo in report.repos:
        where = f"{target}/repo{repo.repo_key}" if repo.repo_key is not None else target
        label = f"repo{repo.repo_key}" if repo.repo_key is not None else "the verified repo"
        problems = [p for p in report.problems if p.repo_key == repo.repo_key]
        if repo.status == "ok" and not problems:
            results.append(CheckResult("verify", Status.PASS,
                                       f"pgbackrest verify found every backup and WAL file valid on {label} "
                                       f"(stanza '{repo.stanza}')", where, 0, 0))
            continue
        groups = []
        for kind, title in (("backup", "invalid backups"), ("archive", "invalid WAL in archive"),
                            ("repo", "repo errors")):
            items = [f"{p.name} ({p.detail})" if kind != "repo" else p.detail
                     for p in problems if p.kind == kind]
            if items:
                groups.append(f"{title}: {'; '.join(items)}")
        results.append(CheckResult(
            "verify", Status.FAIL,
            f"pgbackrest verify reported status '{repo.status}' on {label} (stanza '{repo.stanza}'): "
            f"{' | '.join(groups)}. Expected status ok with every file valid. "
            + " ".join(_VERIFY_FIX[k] for k in ("backup", "archive", "repo") if any(p.kind == k for p in problems)),
            where, len(problems), 0,
            {"problems": [p.model_dump() for p in problems], "lines": list(repo.lines)}))
    return results


# --------------------------------------------------------------------------- WAL archive continuity
# A segment file in the archive: <timeline><log><seg>[.partial]-<sha1>[.<compression>]. History files
# (00000002.history) and anything else are not segments.
_SEGMENT = re.compile(r"(?:^|/)(?P<tl>[0-9A-F]{8})(?P<log>[0-9A-F]{8})(?P<seg>[0-9A-F]{8})(?P<partial>\.partial)?-"
                      r"[0-9a-f]{40}(?:\.\w+)?$")


def segment_position(name: str, segments_per_log: int) -> int:
    """Where a segment (``000000010000000A000000FF``) sits in the WAL stream, whatever its timeline."""
    return int(name[8:16], 16) * segments_per_log + int(name[16:24], 16)


def segment_name(timeline: str, position: int, segments_per_log: int) -> str:
    return f"{timeline}{position // segments_per_log:08X}{position % segments_per_log:08X}"


class ArchiveGap(_Model):
    """Consecutive WAL segments missing from a repo's archive (positions, and their names)."""

    first: str
    last: str
    count: int


def archive_gaps(files: Iterable[str], *, start: str, end: str, segments_per_log: int,
                 archive_ids: Iterable[str] | None = None) -> list[ArchiveGap]:
    """Every run of segment positions from ``start`` to ``end`` with no file in the listing.

    ``files`` are paths under the stanza's archive (``15-1/0000000100000000/<segment>-<sha1>.lz4``),
    restricted to ``archive_ids`` when given. A position counts as present when any timeline holds
    it, whole or as ``.partial``: after a promotion the old timeline's last segment is a
    ``.partial`` and the new timeline continues at the same position, so neither is a hole.
    """
    ids = set(archive_ids or [])
    present: dict[int, str] = {}  # position -> the newest timeline holding it
    for f in files:
        if ids and f.split("/", 1)[0] not in ids:
            continue
        m = _SEGMENT.search(f)
        if m:
            pos = int(m["log"], 16) * segments_per_log + int(m["seg"], 16)
            present[pos] = max(present.get(pos, m["tl"]), m["tl"])
    lo, hi = segment_position(start, segments_per_log), segment_position(end, segments_per_log)
    gaps: list[ArchiveGap] = []
    run: list[int] = []
    tl = start[:8]  # a hole is named on the timeline of the segment before it (timelines only grow)

    def close() -> None:
        gaps.append(ArchiveGap(first=segment_name(tl, run[0], segments_per_log),
                               last=segment_name(tl, run[-1], segments_per_log), count=len(run)))

    for p in range(lo, hi + 1):
        if p not in present:
            run.append(p)
            continue
        if run:
            close()
            run = []
        tl = max(tl, present[p])
    if run:
        close()
    return gaps


def evaluate_archive_continuity(stanza: StanzaInfo, repo_key: int, files: list[str], *, segments_per_log: int,
                                target: str, now: datetime) -> CheckResult:
    """The repo's archive holds every segment from its oldest backup's start to its newest segment.

    A hole means a point-in-time recovery from any backup older than it stops early, silently, at
    the segment before it; the message names the first missing segment and the lost window.
    """
    where = f"{target}/repo{repo_key}"
    backups = sorted((b for b in stanza.backups if b.repo_key == repo_key and b.wal_start), key=lambda b: b.stop)
    ranges = [a for a in stanza.archives if a.repo_key == repo_key and a.max]
    if not backups or not ranges:
        return CheckResult("wal_archive_continuity", Status.SKIP, "no backup or no archived WAL in this repo: "
                           "nothing to check (see the backup and WAL range checks)", where)
    start, end = backups[0].wal_start, max(a.max for a in ranges)
    gaps = archive_gaps(files, start=start, end=end, segments_per_log=segments_per_log,
                        archive_ids=[a.id for a in ranges])
    span = segment_position(end, segments_per_log) - segment_position(start, segments_per_log) + 1
    if not gaps:
        return CheckResult("wal_archive_continuity", Status.PASS,
                           f"every WAL segment from {start} (oldest backup {backups[0].label}) to {end} is in the "
                           f"archive ({span} segments)", where, 0, 0, {"from": start, "to": end, "segments": span})
    first = gaps[0]
    first_pos = segment_position(first.first, segments_per_log)
    last_pos = segment_position(gaps[-1].last, segments_per_log)
    before = [b for b in backups if segment_position(b.wal_stop or b.wal_start, segments_per_log) < first_pos]
    after = [b for b in backups if segment_position(b.wal_start, segments_per_log) > last_pos]
    lost_from = before[-1].stop.isoformat() if before else "the oldest backup"
    lost_to = after[0].start.isoformat() if after else f"now ({now.isoformat(timespec='seconds')})"
    missing = sum(g.count for g in gaps)
    more = f" and {missing - 1} more (last {gaps[-1].last})" if missing > 1 else ""
    return CheckResult(
        "wal_archive_continuity", Status.FAIL,
        f"repo{repo_key} is missing WAL segment {first.first}{more} between {start} and {end}: a point-in-time "
        f"recovery stops silently before it, so no time from {lost_from} to {lost_to} can be recovered from this "
        f"repo{'' if after else ' (no backup starts after the gap)'}. Take a new full backup to start a "
        f"continuous chain, and find why the segment is missing (archive_command errors, repo retention, "
        f"manual deletion).", where, missing, 0,
        {"first_missing": first.first, "gaps": [g.model_dump() for g in gaps], "lost_from": lost_from,
         "lost_to": lost_to})


def evaluate_recoverable_window(stanza: StanzaInfo, repo_key: int, files: list[str], *, segments_per_log: int,
                                target: str, now: datetime, required_hours: float | None) -> CheckResult:
    """How far back this repo alone can recover to any second: the ``pitr_window`` check.

    The window starts at the stop of the oldest backup from which the archive is continuous up to
    its newest segment (a backup older than a hole cannot replay past it), and ends at the newest
    archived segment. It must reach back at least ``required_hours`` (the seed: "point-in-time
    recovery to any second in the last 7 days"); the message names where it starts and why.
    """
    where = f"{target}/repo{repo_key}"
    if required_hours is None:
        return CheckResult("pitr_window", Status.SKIP, "no pitr_window_hours target configured", where)
    backups = sorted((b for b in stanza.backups if b.repo_key == repo_key and b.wal_start and not b.error),
                     key=lambda b: b.stop)
    ranges = [a for a in stanza.archives if a.repo_key == repo_key and a.max]
    fix = ("Keep more full backups (repo retention-full) and their WAL, or lower targets.pitr_window_hours if the "
           "estate promises less")
    if not backups or not ranges:
        return CheckResult("pitr_window", Status.FAIL, f"repo{repo_key} holds no usable backup with archived WAL: "
                           f"nothing can be recovered from it; the target is {required_hours:g} h", where, 0.0,
                           required_hours)
    end = max(a.max for a in ranges)
    gaps = archive_gaps(files, start=backups[0].wal_start, end=end, segments_per_log=segments_per_log,
                        archive_ids=[a.id for a in ranges])
    usable = backups
    if gaps:
        last_hole = segment_position(gaps[-1].last, segments_per_log)
        usable = [b for b in backups if segment_position(b.wal_start, segments_per_log) > last_hole]
    if not usable:
        return CheckResult("pitr_window", Status.FAIL, f"repo{repo_key}: no backup starts after the archive's hole at "
                           f"{gaps[-1].last}, so no point in time can be replayed to the newest WAL ({end}); take a "
                           f"full backup. The target is {required_hours:g} h", where, 0.0, required_hours,
                           {"newest_segment": end, "hole": gaps[-1].last})
    start = usable[0]
    hours = (now - start.stop).total_seconds() / 3600
    why = f" (older backups are cut off by the hole at {gaps[-1].last})" if gaps else ""
    details = {"from": start.stop.isoformat(), "from_backup": start.label, "to_segment": end,
               "hours": round(hours, 3)}
    msg = (f"repo{repo_key} can recover any second from {start.stop.isoformat(timespec='seconds')} (backup "
           f"{start.label}) to its newest archived WAL {end}: {_span(hours, '.1f')}{why}")
    if hours >= required_hours:
        return CheckResult("pitr_window", Status.PASS, f"{msg} >= the {_span(required_hours)} target", where,
                           round(hours, 3), required_hours, details)
    return CheckResult("pitr_window", Status.FAIL, f"{msg}, shorter than the {_span(required_hours)} target "
                       f"(targets.pitr_window_hours). {fix}", where, round(hours, 3), required_hours, details)


def _span(hours: float, fmt: str = "g") -> str:
    """Hours as people read them: ``168 h``, ``10.0 h``, ``12.5 min``, ``7 s``."""
    if hours >= 1:
        return f"{hours:{fmt}} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.1f} min"
    return f"{hours * 3600:.0f} s"
