"""The estate file's JSON schema: committed, current, and the sandbox estate validates against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from drdrill.core.estate import json_schema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "include" / "estate" / "estate.schema.json"


def test_the_committed_schema_is_the_one_the_model_exports():
    assert json.loads(COMMITTED.read_text()) == json_schema(), (
        "include/estate/estate.schema.json is stale: regenerate it with "
        "`python -m drdrill estate schema -o include/estate/estate.schema.json`")


def test_the_command_prints_the_schema():
    res = subprocess.run([sys.executable, "-m", "drdrill", "estate", "schema"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == json_schema()


def test_the_sandbox_estate_validates_and_a_typo_does_not():
    schema = json_schema()
    raw = yaml.safe_load((ROOT / "include" / "estate" / "sandbox.yaml").read_text())
    jsonschema.validate(raw, schema)
    raw["clusters"][0]["targets"]["max_restor_minutes"] = 10
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(raw))
    assert any("max_restor_minutes" in e.message for e in errors), [e.message for e in errors]
