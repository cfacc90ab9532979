"""Command line of the sandbox: ``python -m drdrill.sandbox up|down|status [--json]|env|ssh``.

``env`` prints the Airflow connections to the sandbox as shell ``export`` lines (moto's S3 and
Route53, pgBackRest, and the PostgreSQL connections with the drills' generated password, so the
output is a secret: evaluate it, do not paste it): ``eval "$(python -m drdrill.sandbox env)"`` before
starting Airflow.

``ssh`` starts the sandbox's sshd and writes ``<sandbox>/estate-ssh.yaml`` (the sandbox estate
with SSH runners), then prints its SSH connections and ``DRDRILL_ESTATE`` as ``export`` lines:
``eval "$(python -m drdrill.sandbox ssh)"`` and every drill's commands go through SSH.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from drdrill.core.errors import DrillError


def _print_status(st: dict) -> None:
    print(f"sandbox: {st['root']}")
    print(f"  {'server':<16} {'role':<15} {'port':>6} {'pid':>8}  state")
    for s in st["servers"]:
        print(f"  {s['name']:<16} {s['role']:<15} {s['port'] or '-':>6} {s['pid'] or '-':>8}  {s['state']}")
    dns = st.get("dns")
    if dns:
        if "error" in dns:
            print(f"  dns: error: {dns['error']}")
        else:
            print(f"  dns: {dns['record']} {dns['type']} -> {dns['value'] or 'MISSING'} (TTL {dns['ttl']}, "
                  f"zone {dns['zone']})")
    if st["backups"]:
        print("  backups:")
        for b in st["backups"]:
            if "error" in b:
                print(f"    error: {b['error']}")
            else:
                print(f"    repo{b['repo']}  {b['type']:<4}  {b['label']:<36} stopped {b['stop']}")
    for p in st["problems"]:
        print(f"  problem: {p}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drdrill.sandbox", description=__doc__)
    ap.add_argument("command", choices=["up", "down", "status", "env", "ssh"])
    ap.add_argument("--json", action="store_true", help="status as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if args.command == "status":
        logging.getLogger("drdrill.core.runner").setLevel(logging.WARNING)
    from drdrill.sandbox import Sandbox

    try:
        sb = Sandbox()
        if args.command == "env":
            for name, value in sb.airflow_env().items():
                print(f"export {name}={shlex.quote(value)}")
        elif args.command == "ssh":
            estate_file = sb.layout.root / "estate-ssh.yaml"
            env = {**sb.ssh(estate_file), "DRDRILL_ESTATE": str(estate_file)}
            for name, value in env.items():
                print(f"export {name}={shlex.quote(value)}")
        elif args.command == "up":
            sb.up()
            _print_status(sb.status())
        elif args.command == "down":
            sb.down()
        else:
            st = sb.status()
            print(json.dumps(st, indent=2)) if args.json else _print_status(st)
            return 1 if st["problems"] else 0
    except DrillError as e:
        print(f"sandbox {args.command} failed: {e}", file=sys.stderr)
        return 1
    return 0
