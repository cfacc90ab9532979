"""Every drill's journal task notifies its outcome, and the example DAG is scheduled on main's backups-verified Asset.

Read from the parsed DAGs. The end-to-end runs are the daily verification's own
(tests/integration/test_daily_verification.py): a run with backups over their age target notifies every channel
through the journal task's callback under dag.test() and emits no asset event for main; the healthy run emits
main's event and queues the example DAG. The decisions (recovery, nothing after a pass, channels down, secrets)
are tested in tests/unit/test_notifications.py against real servers.
"""

from __future__ import annotations

DRILL_DAGS = ["dr_daily_verification", "dr_monthly_restore_test", "dr_monthly_aws_backup_restore_test",
              "dr_monthly_velero_restore_test", "dr_quarterly_failover_drill", "dr_postgres_primary_failover",
              "dr_weekly_pod_kill", "dr_monthly_az_failure"]


def test_every_drills_journal_task_notifies_its_outcome(dagbag):
    from drdrill.core.notifications import NOTIFYING_DRILLS
    from drdrill.core.schedules import SCHEDULED_REPORTS
    from drdrill.notifiers import DrillOutcomeNotifier

    # The quarterly compliance report is no drill: it writes reports from the journals, none of its own.
    drills = sorted(d for d in dagbag.dag_ids if d.startswith("dr_") and d not in SCHEDULED_REPORTS)
    assert drills == sorted(DRILL_DAGS) == sorted(NOTIFYING_DRILLS)
    for dag_id in drills:
        t = dagbag.get_dag(dag_id).get_task("journal")
        for cb in (t.on_success_callback, t.on_failure_callback):
            assert any(isinstance(c, DrillOutcomeNotifier) for c in cb or []), dag_id


def test_the_example_dag_is_scheduled_on_mains_backups_verified_asset(dagbag):
    from drdrill.assets import backups_verified_uri

    dag = dagbag.get_dag("example_after_backups_verified")
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.uri for a in dag.timetable.asset_condition.objects] == \
        [backups_verified_uri("sandbox", "main")] == ["x-drdrill://sandbox/main/backups-verified"]
    assert "example" in dag.tags
