"""Switch a DNS record in Route53 and wait until the change is INSYNC (deferred when it takes long)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from drdrill.operators.base import DrillOperator, estate_cluster, truthy


class Route53RecordSwitchOperator(DrillOperator):
    """UPSERT one record (the service endpoint) to a new value, wait INSYNC, read it back.

    :param zone: hosted zone name, e.g. ``prod.example.com``
    :param record: the record, e.g. ``db.prod.example.com``
    :param value: its new value (a CNAME target or an address)
    :param type: ``CNAME`` (default) or ``A``
    :param ttl: TTL in seconds (default 60)
    :param hosted_zone_id: when several zones share the name (private and public)
    :param aws_conn_id: Airflow AWS connection (``endpoint_url`` in its extra for a private endpoint)
    :param cluster: an estate cluster instead: its ``failover.dns`` section ...
    :param node: ... and the node the record must lead to (its ``dns_name``, or its host for ``A``)
    :param insync_timeout: seconds to wait for INSYNC before failing
    :param poke_seconds: how long to poll INSYNC in the task before deferring to the triggerer
        (Route53 usually propagates in under a minute: no worker slot is held meanwhile)
    :param comment: the change batch's comment (who and why)
    :param change: a change already sent (what ``Route53Hook.upsert_record`` returns, e.g. from the task
        that promoted, where the UPSERT saves a scheduling hop): no UPSERT here, only the wait for INSYNC
        (deferred past ``poke_seconds``) and the read-back; the record and zone come from ``cluster`` or
        ``zone``; a ``change`` of ``{"switched": False}`` (no record to switch) is passed through
    :param dry_run: log the change without making it

    Returns ``{"switched", "record", "from", "to", "change_id", "insync_seconds", "at", "waited_in"}``
    (``waited_in``: ``task`` when INSYNC came within ``poke_seconds``, else ``triggerer``); a cluster
    without a DNS record returns ``{"switched": False}``.

    Usage::

        Route53RecordSwitchOperator(task_id="dns_switch", aws_conn_id="aws_default", zone="prod.example.com",
                                    record="db.prod.example.com", value="pg2.prod.example.com", ttl=60)
        # the UPSERT was sent by an earlier task: wait INSYNC and confirm it
        Route53RecordSwitchOperator(task_id="dns_insync", cluster="main", change=promote_and_switch["dns_change"])
    """

    template_fields: Sequence[str] = ("zone", "record", "value", "aws_conn_id", "cluster", "node", "comment",
                                      "dry_run", "insync_timeout", "change")

    def __init__(self, *, zone: str | None = None, record: str | None = None, value: str | None = None,
                 type: str = "CNAME", ttl: int = 60, hosted_zone_id: str | None = None,
                 aws_conn_id: str | None = "aws_default", cluster: str | None = None, node: str | None = None,
                 insync_timeout: float = 300, poke_seconds: float = 3, comment: str = "drdrill", dry_run: Any = False,
                 change: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.zone = zone
        self.record = record
        self.value = value
        self.type = type
        self.ttl = ttl
        self.hosted_zone_id = hosted_zone_id
        self.aws_conn_id = aws_conn_id
        self.cluster = cluster
        self.node = node
        self.insync_timeout = insync_timeout
        self.poke_seconds = poke_seconds
        self.comment = comment
        self.dry_run = dry_run
        self.change = change

    def run(self, context: Any) -> dict[str, Any]:
        from drdrill.hooks import route53

        if self.cluster:
            c = estate_cluster(self.cluster)
            dns = c.failover.dns if c.failover else None
            if dns is None:
                self.log.info("cluster %s has no DNS record in the estate: nothing to switch", c.name)
                return {"switched": False, "reason": "no DNS record configured"}
            n = c.node(str(self.node or ""))
            spec = {"zone": dns.zone, "record": dns.record, "value": route53.value_for(dns, n), "type": dns.type,
                    "ttl": dns.ttl, "hosted_zone_id": dns.hosted_zone_id, "insync_timeout": dns.insync_timeout_seconds}
            conn_id = dns.conn_id
        else:
            if not (self.zone and (self.change is not None or (self.record and self.value))):
                raise ValueError("give zone, record and value (or zone and change), or cluster and node")
            spec = {"zone": self.zone, "record": self.record, "value": self.value, "type": self.type,
                    "ttl": int(self.ttl), "hosted_zone_id": self.hosted_zone_id,
                    "insync_timeout": float(self.insync_timeout)}
            conn_id = self.aws_conn_id
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would UPSERT %s -> %s", spec["record"], spec["value"])
            return {"switched": False, "dry_run": True}
        timeout = float(spec.pop("insync_timeout"))
        hook = route53.Route53Hook(aws_conn_id=conn_id)
        if self.change is not None:
            change = dict(self.change)
            if change.get("switched") is False:
                self.log.info("no change was sent (%s): nothing to wait for", change.get("reason", "not switched"))
                return change
            self.log.info("change %s (%s -> %s) sent by an earlier task: waiting for INSYNC", change["change_id"],
                          change["record"], change["to"])
        else:
            change = hook.upsert_record(comment=str(self.comment), **spec)
        if hook.wait_insync(change, timeout=min(float(self.poke_seconds), timeout)):
            return self._done(hook, change, spec["zone"], waited_in="task")
        from drdrill.triggers.route53 import Route53ChangeInsyncTrigger

        delay = 5
        self.log.info("change %s still %s after %.0fs: deferring until INSYNC (timeout %.0fs)", change["change_id"],
                      change["status"], float(self.poke_seconds), timeout)
        payload = {"change": change, "zone": spec["zone"], "conn_id": conn_id, "timeout": timeout}
        self.defer(trigger=Route53ChangeInsyncTrigger(change_id=change["change_id"], aws_conn_id=conn_id,
                                                      payload=payload, waiter_delay=delay,
                                                      waiter_max_attempts=max(1, int(timeout // delay))),
                   method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from drdrill.core.errors import DrillError
        from drdrill.core.journal import record_step
        from drdrill.hooks import route53

        p = event["payload"]
        change, zone, conn_id = p["change"], p["zone"], p["conn_id"]
        if event.get("status") != "success":
            msg = (f"Route53 change {change['change_id']} for {change['record']} did not reach INSYNC within "
                   f"{float(p.get('timeout') or 0):.0f}s ({event.get('message')}); check the zone in the AWS console")
            record_step(context, self.task_id, "failed", change["sent_at"], msg)
            raise DrillError(msg)
        out = self._done(route53.Route53Hook(aws_conn_id=conn_id), change, zone, waited_in="triggerer")
        record_step(context, self.task_id, "success", change["sent_at"])
        return out

    def _done(self, hook: Any, change: dict[str, Any], zone: str, *, waited_in: str) -> dict[str, Any]:
        # INSYNC seen by the task that sent the change: that moment, not this later read-back
        out = {"switched": True, "at": time.time(), "waited_in": waited_in, **hook.confirm(change, zone=zone)}
        if change.get("insync_at"):
            out.update(at=change["insync_at"], waited_in="sender",
                       insync_seconds=round(change["insync_at"] - change["sent_at"], 3))
        return out
