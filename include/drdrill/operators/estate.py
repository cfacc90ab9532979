"""The first task of every drill: check the estate before trusting it (read-only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, truthy


class EstateCheckOperator(DrillOperator):
    """`python -m drdrill estate check` as a task: the estate file, its connections, every node's
    login, role and privileges, pgBackRest ``info`` per repo through the runner, the object stores'
    endpoints and the Route53 record. Fails listing every failed check with its fix, before the
    drill touches anything.

    :param drill: check the clusters that allow this drill (a DAG id); ignored with ``cluster``
    :param cluster: check only this cluster (templated, e.g. ``{{ params.cluster }}``)
    :param down_ok: a node that does not answer is not a failure (default: the drills judge the
        estate's health themselves, and the incident runbook's primary is down by definition); a
        node that answers but refuses the login always fails
    :param node_runners: also run ``pg_ctl --version`` on every node's host through its runner
        (default; off for a drill that acts only through the backup host's runner)
    :param deep: also check what the CLI checks about the estate's state (node roles against the
        estate, pgBackRest ``info`` and each object store's endpoint); default off

    Returns every check as a dict (``name``, ``status``, ``message``, ``target``, ``details``).

    Usage::

        EstateCheckOperator(task_id="estate_check", cluster="{{ params.cluster }}")
    """

    template_fields: Sequence[str] = ("drill", "cluster", "down_ok", "deep", "node_runners")
    ui_color = "#e8f4ea"

    def __init__(self, *, drill: str | None = None, cluster: str | None = None, down_ok: Any = True,
                 deep: Any = False, node_runners: Any = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drill = drill
        self.cluster = cluster
        self.down_ok = down_ok
        self.deep = deep
        self.node_runners = node_runners

    def run(self, context: Any) -> list[dict[str, Any]]:
        from drdrill.core.checks import summarize
        from drdrill.core.errors import DrillFailed
        from drdrill.drills.estatecheck import check_estate

        clusters = [str(self.cluster)] if self.cluster else None
        results = check_estate(clusters=clusters, drill=None if clusters else self.drill,
                               down_ok=truthy(self.down_ok), deep=truthy(self.deep),
                               node_runners=truthy(self.node_runners))
        for r in results:
            (self.log.warning if r.failed else self.log.info)("%s", r.line())
        dicts = [r.to_dict() for r in results]
        if any(r.failed for r in results):
            raise DrillFailed("the estate check failed; nothing was touched:\n" + summarize(results), results=dicts)
        return dicts
