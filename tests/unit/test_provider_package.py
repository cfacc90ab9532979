"""drdrill installs into someone else's Airflow as a provider, from a wheel built from this repo.

The wheel is built from a copy of the sources (the build never writes into the work tree), then
installed with ``--no-deps`` into a fresh virtualenv that sees this project's Airflow "beside"
it through a ``.pth`` file, the way a user's Airflow image already has Airflow and its
providers. PYTHONPATH is cleared and every command runs outside the repository, so ``include/``
is not importable there: whatever drdrill that venv finds is the installed wheel, which the
probe checks before anything else. No network: the build uses this venv's setuptools and pip
installs the wheel file only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The README's example DAG: a user's DAG file composing drdrill's operators (only drdrill's public
# classes and airflow.sdk), parsed in the clean venv from the installed wheel.
EXAMPLE_DAG = ROOT / "dags" / "example_restore_row_count.py"

# Runs inside the clean venv: what Airflow's ProvidersManager and the connection-form API see.
PROBE = '''
import importlib, importlib.util, json, sys, warnings
from pathlib import Path

warnings.simplefilter("ignore")
site = Path(sys.argv[1]).resolve()
dags = sys.argv[2]
out = {}

import drdrill
out["drdrill_file"] = drdrill.__file__
out["installed_from_site"] = Path(drdrill.__file__).resolve().is_relative_to(site)
out["sandbox_shipped"] = importlib.util.find_spec("drdrill.sandbox") is not None

from airflow.providers_manager import ProvidersManager

pm = ProvidersManager()
info = pm.providers["drdrill"]
out["version"] = info.version
out["data"] = info.data
hook = pm.hooks["pgbackrest"]  # the lazy import of PgBackRestHook
out["hook"] = hook._asdict() if hook else None

# What the UI's connection form is built from (GET /ui/connections/hook_meta).
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}["pgbackrest"]
out["form"] = json.loads(meta.model_dump_json())

listed = [m for section in ("hooks", "operators", "sensors", "triggers")
          for entry in info.data.get(section, []) for m in entry["python-modules"]]
out["missing_modules"] = sorted(m for m in listed if importlib.util.find_spec(m) is None)
for m in listed:
    if m not in out["missing_modules"]:
        importlib.import_module(m)

from drdrill.core import journal
from drdrill.core.errors import EstateError
from drdrill.core.estate import load_estate

out["code_version"] = journal.code_version()
try:
    load_estate()
    out["estate_error"] = None
except EstateError as e:
    out["estate_error"] = str(e)

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=dags)
out["import_errors"] = {k: str(v) for k, v in bag.import_errors.items()}
out["dag_ids"] = sorted(bag.dag_ids)
out["tasks"] = {d: {t.task_id: type(t).__name__ for t in dag.tasks} for d, dag in bag.dags.items()}
print("PROBE-RESULT " + json.dumps(out, default=str))
'''


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{argv[:4]} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("provider-package")
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("AIRFLOW", "DRDRILL_"))}

    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    src = tmp / "src"
    (src / "include").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "include" / "drdrill", src / "include" / "drdrill",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(tmp / "dist"), str(src)], env, tmp)
    wheels = list((tmp / "dist").glob("drdrill-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env, tmp)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env, tmp).stdout.strip())
    # Airflow "beside" the clean venv, not reinstalled into it.
    (site / "airflow_beside.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(wheels[0])], env, tmp)

    dags = tmp / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE_DAG, dags / EXAMPLE_DAG.name)
    env.update({
        "AIRFLOW_HOME": str(tmp / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
    })
    return {"tmp": tmp, "py": py, "site": site, "env": env, "dags": dags, "wheel": wheels[0]}


@pytest.fixture(scope="module")
def probe(clean_venv) -> dict:
    v = clean_venv
    res = _run([str(v["py"]), "-c", PROBE, str(v["site"]), str(v["dags"])], v["env"], v["tmp"], timeout=180)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("PROBE-RESULT "))
    return json.loads(line.removeprefix("PROBE-RESULT "))


def test_the_wheel_holds_the_package_and_the_entry_point_only(clean_venv):
    import zipfile

    names = zipfile.ZipFile(clean_venv["wheel"]).namelist()
    assert "drdrill/provider.py" in names and "drdrill/hooks/pgbackrest.py" in names
    assert not [n for n in names if n.startswith(("drdrill/sandbox/", "estate/", "dags/", "tests/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(clean_venv["wheel"]).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text
    assert "provider_info = drdrill.provider:get_provider_info" in text
    # The scheduler of a user's Airflow must know the drills' timetables: the plugin comes with the wheel.
    assert "[airflow.plugins]" in text and "drdrill = drdrill.plugin:DrdrillPlugin" in text
    # The DR drills page comes with it, with the files it serves (the chart library and its license too).
    assert "drdrill_ui = drdrill.ui.plugin:DrDrillsPlugin" in text
    assert {"drdrill/ui/static/index.html", "drdrill/ui/static/dr-drills.js",
            "drdrill/ui/static/vendor/uPlot.iife.min.js", "drdrill/ui/static/vendor/uPlot.LICENSE"} <= set(names)


def test_the_clean_venv_imports_the_installed_wheel_not_the_repository(probe):
    assert probe["installed_from_site"], f"drdrill came from {probe['drdrill_file']}, not the clean venv"
    assert not probe["sandbox_shipped"]


def test_airflow_providers_get_lists_drdrill(clean_venv):
    v = clean_venv
    res = _run([str(v["py"]), "-m", "airflow", "providers", "get", "drdrill", "--full", "-o", "json"],
               v["env"], v["tmp"])
    start = res.stdout.index("[")
    (info,) = json.loads(res.stdout[start:])
    assert info["package-name"] == "drdrill"
    assert info["versions"] == ["0.1.0"]
    assert [c["connection-type"] for c in info["connection-types"]] == ["pgbackrest"]


def test_provider_manager_sees_hooks_connection_type_and_modules(probe):
    assert probe["version"] == "0.1.0"
    data = probe["data"]
    modules = {section: [m for e in data[section] for m in e["python-modules"]]
               for section in ("hooks", "operators", "sensors", "triggers")}
    assert modules["hooks"] == ["drdrill.hooks.pgbackrest", "drdrill.hooks.postgres", "drdrill.hooks.route53",
                                "drdrill.hooks.fis", "drdrill.hooks.ecs", "drdrill.hooks.cloudwatch",
                                "drdrill.hooks.kubernetes", "drdrill.hooks.velero",
                                "drdrill.hooks.aws_backup", "drdrill.hooks.s3_lock"]
    assert set(modules["operators"]) == {"drdrill.operators.pgbackrest", "drdrill.operators.dataquality",
                                         "drdrill.operators.postgres", "drdrill.operators.route53",
                                         "drdrill.operators.restore", "drdrill.operators.deadline",
                                         "drdrill.operators.estate", "drdrill.operators.fis",
                                         "drdrill.operators.kubernetes", "drdrill.operators.chaos",
                                         "drdrill.operators.velero", "drdrill.operators.aws_backup"}
    assert modules["sensors"] == ["drdrill.sensors.postgres"]
    assert modules["triggers"] == ["drdrill.triggers.postgres", "drdrill.triggers.route53",
                                   "drdrill.triggers.deadline", "drdrill.triggers.fis",
                                   "drdrill.triggers.kubernetes", "drdrill.triggers.chaos",
                                   "drdrill.triggers.velero"]
    assert probe["hook"] == {
        "hook_class_name": "drdrill.hooks.pgbackrest.PgBackRestHook",
        "connection_id_attribute_name": "pgbackrest_conn_id",
        "package_name": "drdrill",
        "hook_name": "pgBackRest",
        "connection_type": "pgbackrest",
        "connection_testable": False,
        "dialects": [],
    }


def test_every_listed_module_is_in_the_wheel_and_imports(probe):
    assert probe["missing_modules"] == [], f"listed in drdrill.provider, not in the wheel: {probe['missing_modules']}"


def test_the_pgbackrest_connection_form(probe):
    form = probe["form"]
    assert form["hook_name"] == "pgBackRest"
    assert form["hook_class_name"] == "drdrill.hooks.pgbackrest.PgBackRestHook"
    std = form["standard_fields"]
    assert {f for f in ("url_schema", "port", "password") if std[f] and std[f]["hidden"]} == {
        "url_schema", "port", "password"}
    assert std["login"] == {"hidden": False, "title": "Run as (OS user)", "placeholder": "postgres"}
    assert std["host"]["title"] == "Host (empty: this worker, or the SSH connection's host)"
    assert not std["host"]["hidden"]
    extra = form["extra_fields"]
    assert set(extra) == {"stanza", "config", "ssh_conn_id", "process_max"}
    assert extra["ssh_conn_id"]["schema"]["title"] == "SSH connection"
    assert extra["stanza"]["schema"]["title"] == "Stanza"
    assert extra["process_max"]["value"] == 2


def test_a_user_dag_with_the_operators_parses(probe):
    assert probe["import_errors"] == {}
    assert probe["dag_ids"] == ["example_restore_row_count"]
    assert probe["tasks"] == {"example_restore_row_count": {"restore": "PgBackRestRestoreOperator",
                                                            "row_counts": "RowCountCheckOperator",
                                                            "teardown": "ScratchServerTeardownOperator"}}


def test_installed_it_asks_for_the_estate_file_and_reports_its_version(probe):
    assert probe["estate_error"] and probe["estate_error"].startswith("DRDRILL_ESTATE is not set")
    assert probe["code_version"] == "drdrill==0.1.0"

