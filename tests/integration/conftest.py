"""Fixtures of the integration tests beyond tests/conftest.py: Task SDK comms, clean lock Variables, and one
restore test that passed."""

import pytest

from integration.lockhelpers import clean, sdk  # noqa: F401 - fixtures, registered by being imported here


@pytest.fixture(scope="session")
def passed_restore_test(dagbag, estate):
    """One real restore test of main (repo1, latest) that passed, run once per session: the daily verification's
    3-2-1-1-0 '0' needs a restore test that passed within 35 days, and the restore test's own tests read it."""
    from integration.helpers import failures, journal, run_dag

    dr = run_dag(dagbag, "dr_monthly_restore_test", {"repo": 1, "recovery_point": "latest"})
    doc = journal(estate, "dr_monthly_restore_test", dr.run_id)
    assert dr.state == "success", failures(doc)
    return dr, doc
