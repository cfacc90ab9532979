"""Quarterly compliance report: the evidence of the quarter that just closed, written beside the journals.

One task: reads every journal (`drdrill.evidence.build`) and writes the report of the previous
quarter (in the estate's ``schedules.timezone``) as ``<journal location>/reports/<YYYY-Qn>.html`` and
``.md`` (`drdrill.evidence.report.write_quarter_report`): every drill run with its figures against
targets, the windows a scheduled drill did not satisfy, the 3-2-1-1-0 scorecard, the resilience policy
and the SHA-256 of every journal it cites. A report is written once and never overwritten, like a
journal; a rerun for the same quarter keeps it. The ``quarter`` param (``YYYY-Qn``) writes the report of
another closed quarter. The same report on demand: ``python -m drdrill report``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from drdrill.core.limits import DRILL_POOL, TASK_TIMEOUT
from drdrill.timetables import schedule_for


@dag(
    dag_id="dr_quarterly_compliance_report",
    # The estate's schedules section (default: the first business day of each quarter, 07:00).
    schedule=schedule_for("dr_quarterly_compliance_report"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["dr", "report", "compliance"],
    # Reading journals is idempotent and a report is never overwritten: a retry (a storage blip) is safe.
    default_args={"owner": "platform", "retries": 2, "retry_delay": timedelta(minutes=1),
                  "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "quarter": Param(None, type=["null", "string"], pattern=r"^\d{4}-Q[1-4]$",
                         description="YYYY-Qn: a closed quarter to report (default: the one before the run's date)"),
    },
    doc_md=__doc__,
)
def dr_quarterly_compliance_report():
    @task
    def write_report() -> dict:
        from zoneinfo import ZoneInfo

        from airflow.sdk.exceptions import AirflowFailException

        from drdrill.core.estate import load_estate
        from drdrill.evidence.report import previous_quarter, write_quarter_report

        ctx = get_current_context()
        estate = load_estate(topology=False)
        at = ctx["dag_run"].run_after or datetime.now(UTC)
        quarter = ctx["params"].get("quarter") or previous_quarter(at.astimezone(ZoneInfo(estate.schedules.timezone))
                                                                   .date())
        try:
            return write_quarter_report(estate, quarter)
        except ValueError as e:  # a quarter not closed yet: no retry makes it closed
            raise AirflowFailException(str(e)) from None

    write_report()


dr_quarterly_compliance_report()
