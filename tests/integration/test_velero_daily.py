"""The whole daily DAG on the sandbox with a Velero install on the emulator (`test_velero.py`'s fixtures).

Apart from `test_velero.py`, whose tests need no sandbox and run beside the sandbox's tests (tests/conftest.py):
this one runs the daily verification against the sandbox itself, in the sandbox's group.
"""

from __future__ import annotations

import pytest
import yaml

from integration.helpers import failures, journal

# The Velero fixtures (imported: a fixture is found in the module that names it).
from integration.test_velero import ENTRY, T_BSL, T_SCHEDULE, velero, velero_cluster  # noqa: F401


@pytest.mark.sandbox
@pytest.mark.usefixtures("velero")
def test_the_daily_verification_runs_the_velero_checks_and_scores_the_install_as_a_copy(
        dagbag, sandbox, passed_restore_test, tmp_path, monkeypatch):
    """The whole daily DAG on the sandbox with the estate's own backups (AWS Backup and Object Lock on moto) and
    the Velero install on the emulator, which holds a copy of main (its database runs in the cluster too): its
    checks are journalled and it is the scorecard's fourth copy."""
    from drdrill.core import statestore
    from drdrill.core.estate import load_estate
    from drdrill.core.paths import DEFAULT_ESTATE
    from integration.helpers import run_dag

    doc = yaml.safe_load(DEFAULT_ESTATE.read_text())
    doc["backups"]["velero"] = [{**ENTRY, "copies": [{"cluster": "main"}]}]
    f = tmp_path / "estate.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("DRDRILL_ESTATE", str(f))
    state = statestore.path(load_estate().state_store, "scorecard", "main.json")
    before = state.read_text() if state.exists() else None
    try:
        dr = run_dag(dagbag, "dr_daily_verification")
    finally:  # the sandbox's own score (3 copies) must not read as a drop from this run's 4
        if before is None:
            state.unlink(missing_ok=True)
        else:
            statestore.write_atomically(state, before)
    jdoc = journal(load_estate(), "dr_daily_verification", dr.run_id)
    assert dr.state == "success", failures(jdoc)
    got = {(r["name"], r["target"]): r["status"] for r in jdoc["results"] if r["target"].startswith("velero/")}
    assert got == {("velero_schedule", T_SCHEDULE): "pass", ("velero_backup", T_SCHEDULE): "pass",
                   ("velero_storage_location", T_BSL): "pass"}, got
    card = {r["name"]: r for r in jdoc["results"] if r["name"].startswith("scorecard")}
    assert card["scorecard"]["value"] == "4-2-1-1-0", card["scorecard"]["message"]
    assert "Velero prod-k8s" in card["scorecard.copies"]["message"]
