"""Monthly AZ failure: the seed's AWS FIS experiment, "terminate one AZ, verify auto-healing".

Same lifecycle as the pod kill (preflight guards, approval, steady state, act, teardown, journal).
The act depends on the service's ``az_failure.engine``: ``sandbox`` stops the replicas of one zone
(``percent`` of them) for ``duration`` with the customer probe running, starts them again and waits
until they are healthy; ``fis`` runs the estate's FIS experiment template (drift refused, a
preview first), follows it in the triggerer, then requires every ECS service back at its desired
count within the heal bound and the stop-condition alarm never fired. Passing means: no
customer-visible error beyond the tolerance, latency within bound, healed within 5 minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag

from drdrill.core.limits import DESTRUCTIVE_POOL, DRILL_POOL, TASK_TIMEOUT
from drdrill.operators.chaos import ZoneFailureOperator
from drdrill.runbook.chaos import build_chaos_drill
from drdrill.timetables import schedule_for


@dag(
    dag_id="dr_monthly_az_failure",
    schedule=schedule_for("dr_monthly_az_failure"),  # the estate's schedules (default: second Wednesday 14:00)
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # the FIS template travels from the plan as a dict
    tags=["dr", "chaos", "az-failure", "fis"],
    default_args={"owner": "platform", "retries": 0, "execution_timeout": TASK_TIMEOUT, "pool": DRILL_POOL},
    params={
        "service": Param(None, type=["null", "string"], description="service from the estate (default: one of "
                         "those allowing this drill, chosen with the seed)"),
        "zone": Param(None, type=["null", "string"], description="the zone to fail (default: random, journalled)"),
        "duration_seconds": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                  description="how long the zone stays down (default: the estate's duration)"),
        "seed": Param(None, type=["null", "integer"], description="replay a run's random choice with its seed"),
        "update_template": Param(False, type="boolean", description="fis: update a live template that drifted from "
                                 "the estate (default: refuse it)"),
        "dry_run": Param(False, type="boolean", description="choose and report the zone, touch nothing (fis: the "
                         "preview runs)"),
    },
    doc_md=__doc__,
)
def dr_monthly_az_failure():
    # The zone, the duration and (engine fis) the experiment's arguments come from preflight's plan.
    build_chaos_drill("dr_monthly_az_failure", lambda: ZoneFailureOperator(
        task_id="act", update_template="{{ params.update_template }}", dry_run="{{ params.dry_run }}",
        pool=DESTRUCTIVE_POOL))


dr_monthly_az_failure()
