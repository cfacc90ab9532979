"""`python -m drdrill role sql`: the statements a DBA pipes into psql to create the drills' role."""

from __future__ import annotations

import subprocess
import sys

from drdrill.core import privileges


def _sql(*args: str) -> list[str]:
    res = subprocess.run([sys.executable, "-m", "drdrill", "role", "sql", *args], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_role_sql_prints_every_grant_once_per_line_and_never_a_password():
    lines = _sql()
    assert len(lines) == len(privileges.setup_sql(privileges.DEFAULT_ROLE))
    assert all(line.endswith(";") for line in lines)
    assert any('GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "drdrill"' in ln for ln in lines)
    assert any("CREATE SCHEMA" in ln for ln in lines)
    assert not any("PASSWORD" in ln.upper() for ln in lines)


def test_role_sql_for_the_maintenance_database_has_no_schema_and_takes_a_role_name():
    lines = _sql("--maintenance-db", "--role", "dr_ops")
    assert not any("CREATE SCHEMA" in ln for ln in lines)
    assert any('GRANT pg_monitor TO "dr_ops"' in ln for ln in lines)
