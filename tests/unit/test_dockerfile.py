"""The container image can run every drill: each program drill code runs through a runner is in
``drdrill.core.commands`` (read from the code itself here), and the Dockerfile installs its package and
checks it at build time. No Docker engine needed: the Dockerfile and docker-compose.yaml are read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from drdrill.core import commands
from drdrill.core.commands import ESSENTIAL, EXECUTABLES, RUNNER_WRAPPERS, STARTED_INDIRECTLY

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "drdrill"
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _program(node: ast.AST) -> str | None:
    """The program an argv's first element names: "ps", self._bin("pg_ctl"), str(Path(bin_dir) / "pg_ctl")."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str" and node.args:
        return _program(node.args[0])
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return Path(node.value).name
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _program(node.right)
    if (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)) and node.args
            and getattr(node.func, "attr", getattr(node.func, "id", "")).endswith("_bin")):
        return _program(node.args[0])
    return None


def programs_run_by_drill_code() -> dict[str, list[str]]:
    """Every ``<runner>.run([program, ...])`` in the package (the sandbox, which builds the estate, aside)."""
    found: dict[str, list[str]] = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        if "sandbox" in f.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                    # subprocess.run is not a runner (the journal's `git describe`, optional, on the worker)
                    and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess")
                    and node.args and isinstance(node.args[0], ast.List) and node.args[0].elts):
                prog = _program(node.args[0].elts[0])
                if prog:
                    found.setdefault(prog, []).append(f"{f.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_list_is_what_the_code_runs():
    found = programs_run_by_drill_code()
    names = {e.name for e in EXECUTABLES}
    assert {"pg_ctl", "pg_rewind", "ps"} <= set(found), found  # the scan sees the runner calls
    unlisted = {p: where for p, where in found.items() if p not in names}
    assert not unlisted, f"programs run through a runner but missing from drdrill.core.commands: {unlisted}"
    assert names - set(found) - {"pgbackrest"} <= STARTED_INDIRECTLY | RUNNER_WRAPPERS, names - set(found)
    runner = (PACKAGE / "core" / "runner.py").read_text()
    assert all(f'"{w}"' in runner for w in RUNNER_WRAPPERS)


def test_pgbackrest_commands_start_with_the_listed_program():
    from drdrill.hooks.pgbackrest import PgBackRestHook

    hook = PgBackRestHook(stanza="main", runner=object())
    assert hook.argv("info")[0] in {e.name for e in EXECUTABLES}


def _apt_packages() -> set[str]:
    pkgs: set[str] = set()
    for m in re.finditer(r"apt-get install\s+(?:-\S+\s+)*((?:[a-z0-9][a-z0-9.+-]*\s*(?:\\\s*)?)+)", DOCKERFILE):
        pkgs |= {w for w in m.group(1).replace("\\", " ").split() if not w.startswith("-")}
    return pkgs


def test_the_image_installs_every_package_the_drills_need():
    installed = _apt_packages()
    assert {"pgbackrest", "postgresql-15", "openssh-client"} <= installed, installed
    needed = commands.packages() - ESSENTIAL
    assert needed <= installed, f"Dockerfile does not install {sorted(needed - installed)}"


def test_the_image_checks_the_list_at_build_time_where_the_estate_looks():
    from drdrill.core.estate import Postgres

    assert "COPY include/drdrill/core/commands.py /opt/drdrill/commands.py" in DOCKERFILE
    assert f"RUN python /opt/drdrill/commands.py {commands.PG_BIN_DIR}" in DOCKERFILE
    assert str(Postgres().bin_dir) == commands.PG_BIN_DIR  # the estate's default bin_dir is the image's
    # The server package must not start a cluster of its own inside the image.
    assert "create_main_cluster = false" in DOCKERFILE


def test_this_machine_has_every_program_and_a_missing_one_is_named_with_its_package(tmp_path):
    assert commands.missing() == []  # the sandbox runs the same programs
    lines = commands.missing(tmp_path)
    assert f"{tmp_path}/pg_ctl is missing" in lines[0] and "install the postgresql-15 package" in lines[0]
    assert len(lines) == sum(e.in_bin_dir for e in EXECUTABLES)


def _target(volume: str) -> str:
    """The path inside the container of a `source:target[:mode]` mount (the source may be ${VAR:-default})."""
    return re.sub(r"^\$\{[^}]*\}", "SRC", volume).split(":")[1]


def test_compose_mounts_the_estate_everywhere_and_gives_the_worker_config_and_scratch():
    services = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    estate_path = services["scheduler"]["environment"]["DRDRILL_ESTATE"]
    airflow = [n for n, s in services.items() if s.get("environment", {}).get("DRDRILL_ESTATE")]
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "worker"} <= set(airflow)
    for name in airflow:  # the dag-processor reads the schedules section; tasks validate the whole file
        mounts = [v for v in services[name]["volumes"] if _target(v) == estate_path]
        assert mounts and mounts[0].endswith(":ro"), (name, services[name]["volumes"])
    worker = [_target(v) for v in services["worker"]["volumes"]]
    assert "/etc/pgbackrest" in worker and "/var/lib/drdrill/scratch" in worker
    assert "/var/lib/drdrill/scratch" in DOCKERFILE  # created writable by group 0 for any worker UID
