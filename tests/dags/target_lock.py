"""Test DAG: the target-lock API as a chaos DAG uses it, in real tasks (`Holder.current`, acquire in the
1-slot pool, check right before the action, release in a teardown that always runs)."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task

from drdrill.core.limits import DESTRUCTIVE_POOL


@dag(dag_id="drdrill_test_target_lock", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False,
     params={"fail_action": False})
def drdrill_test_target_lock():
    @task(pool=DESTRUCTIVE_POOL)
    def take() -> dict:
        from drdrill.core import targetlock

        return targetlock.acquire(["service:web"], holder=targetlock.Holder.current("kill one replica"),
                                  ttl_seconds=300).to_dict()

    @task
    def act(lease: dict) -> dict:
        from airflow.sdk import get_current_context

        from drdrill.core import killswitch, targetlock

        verdict = killswitch.check_kill_switch("kill one replica")
        held = targetlock.ensure_held(lease, "kill one replica")
        if get_current_context()["params"]["fail_action"]:
            raise RuntimeError("the action failed")
        return {"kill_switch": verdict, "held": held, "holders": targetlock.holders(["service:web"])}

    @task
    def release(lease: dict) -> list:
        from drdrill.core import targetlock

        return targetlock.release(lease)

    lease = take()
    acted = act(lease)
    freed = release(lease).as_teardown(setups=lease)
    acted >> freed


drdrill_test_target_lock()
