"""drdrill's command line.

``python -m drdrill estate check [FILE] [--cluster NAME ...] [--drill DAG_ID] [--json]``
    validates the estate file (default: ``$DRDRILL_ESTATE``), then, read-only, every connection it
    names: PostgreSQL login and role on every node, the drills' privileges, pgBackRest ``info`` per
    repo through the cluster's runner, each object store's endpoint, the Route53 record, the
    journal and state stores. One line per check with the fix; exit code 1 when any check fails.
    Run it where the drills run (a worker), with the same environment and connections.

``python -m drdrill role sql [--role NAME] [--maintenance-db]``
    prints the statements a superuser runs once to create or repair the drills' least-privilege
    role (`drdrill.core.privileges`): in the cluster's database, and with ``--maintenance-db`` in
    ``postgres`` (function grants are per database). Idempotent; it never sets a password (set it
    with ``\\password`` in psql, so it reaches no log).

``python -m drdrill estate schema [--output FILE]``
    prints the estate file's JSON schema (committed as ``include/estate/estate.schema.json``;
    editors validate estate files with it, e.g. ``# yaml-language-server: $schema=estate.schema.json``).

``python -m drdrill report [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--format html|md] [--estate FILE] [-o FILE]``
    the compliance report of a period, from the journals alone (no Airflow needed for a local journal
    location): every drill run with its verdict and figures against targets, the windows a scheduled
    drill did not satisfy, the 3-2-1-1-0 scorecard, the resilience policy and its score, and the
    SHA-256 of every journal it cites. Dates are inclusive, in the estate's ``schedules.timezone``;
    default: the 365 days up to today. Exit code 2 on bad input (a malformed date, --since after
    --until, an unknown format), 1 when the estate cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drdrill", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="topic", required=True)
    estate = sub.add_parser("estate", help="check an estate file, or print its JSON schema")
    verbs = estate.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser("check", help="validate the file, then every connection it names (read-only)")
    check.add_argument("file", nargs="?", help="estate file (default: $DRDRILL_ESTATE, else the sandbox estate)")
    check.add_argument("--cluster", action="append", help="only this cluster (repeatable)")
    check.add_argument("--drill", help="only the clusters that allow this drill (a DAG id)")
    check.add_argument("--json", action="store_true", help="the results as JSON")
    check.add_argument("--verbose", action="store_true", help="log every command and connection attempt")
    schema = verbs.add_parser("schema", help="print the estate file's JSON schema")
    schema.add_argument("--output", "-o", help="write it to this file instead")
    role = sub.add_parser("role", help="the drills' least-privilege role")
    role_verbs = role.add_subparsers(dest="verb", required=True)
    role_sql = role_verbs.add_parser("sql", help="print the SQL that creates or repairs the role")
    role_sql.add_argument("--role", default=None, help="role name (default: drdrill)")
    role_sql.add_argument("--maintenance-db", action="store_true",
                          help="the statements for the postgres database (node actions, pg_rewind): no schema")
    rep = sub.add_parser("report", help="the compliance report of a period (HTML or Markdown), from the journals")
    rep.add_argument("--since", type=_date, help="first day of the period, YYYY-MM-DD (default: 365 days before "
                                                  "--until)")
    rep.add_argument("--until", type=_date, help="last day of the period, YYYY-MM-DD, inclusive (default: today)")
    rep.add_argument("--format", default="html", choices=("html", "md"), help="html (one self-contained file) or "
                                                                               "md (renders on GitHub)")
    rep.add_argument("--estate", help="estate file (default: $DRDRILL_ESTATE, else the sandbox estate)")
    rep.add_argument("--output", "-o", help="write it to this file instead of standard output")
    args = ap.parse_args(argv)

    if args.topic == "report":
        if args.since and args.until and args.since > args.until:
            rep.error(f"--since {args.since} is after --until {args.until}: give the first day of the period first")
        return _report(args)

    if args.topic == "role":
        from drdrill.core import privileges

        stmts = privileges.setup_sql(args.role or privileges.DEFAULT_ROLE, schema=not args.maintenance_db)
        sys.stdout.write("".join(f"{s.rstrip().rstrip(';')};\n" for s in stmts))
        return 0

    if args.verb == "schema":
        from drdrill.core.estate import json_schema

        _emit(json.dumps(json_schema(), indent=2) + "\n", args.output)
        return 0

    if not args.verbose:  # before Airflow configures its logging on first import
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:  # one line per check; Airflow's own logging setup would print every command
        for name in ("drdrill", "airflow", "botocore", "s3fs", "fsspec"):
            logging.getLogger(name).setLevel(logging.ERROR)
    from drdrill.drills.estatecheck import check_estate, report

    results = check_estate(args.file, clusters=args.cluster, drill=args.drill)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, default=str))
    else:
        print(report(results))
    return 1 if any(r.failed for r in results) else 0


def _date(text: str):
    import datetime as dt

    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-31") from None


def _report(args: argparse.Namespace) -> int:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from drdrill import evidence
    from drdrill.core.errors import EstateError
    from drdrill.core.estate import load_estate
    from drdrill.evidence.report import render

    try:
        estate = load_estate(args.estate, topology=False)
    except EstateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    tz = ZoneInfo(estate.schedules.timezone)
    now = dt.datetime.now(tz)
    until_day = args.until or now.date()
    since_day = args.since or until_day - dt.timedelta(days=365)
    since = dt.datetime.combine(since_day, dt.time(), tz)
    until = dt.datetime.combine(until_day + dt.timedelta(days=1), dt.time(), tz)  # the last day, inclusive
    _emit(render(evidence.build(estate, since=since, until=until), args.format), args.output)
    return 0


def _emit(text: str, output: str | None) -> None:
    """``text`` to the ``-o`` file, else to standard output."""
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())
