"""Chaos drill logic: the weekly pod kill and the monthly AZ failure (DESIGN.md, "Chaos drills").

- ``common``: preflight (guards, the plan, the repair of what a killed run left), the steady state,
  the verdict, the teardown and the journal;
- ``guards``: each guard's verdict (skip or refuse), the seeded random choice;
- ``targets``: a service's pod-kill target by kind, behind one interface: ``process`` (supervisord
  replicas, `process`), ``kubernetes`` (`kube`), ``postgres`` (a standby, `standby`);
- ``fis``: the AZ failure's AWS path (the estate's FIS template as the operator's arguments).

The graph is `drdrill.runbook.chaos`; the actions are `drdrill.operators.chaos`; the fault is watched
by `drdrill.triggers.chaos` with the customer probe (`drdrill.core.probe`) running.
"""
