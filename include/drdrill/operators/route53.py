"""Switch a DNS record in Route53 and wait until the change is INSYNC."""

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
    :param comment: the change batch's comment (who and why)
    :param dry_run: log the change without making it

    Returns ``{"switched", "record", "from", "to", "change_id", "insync_seconds", "at"}``; a cluster
    without a DNS record returns ``{"switched": False}``.

    Usage::

        Route53RecordSwitchOperator(task_id="dns_switch", aws_conn_id="aws_default", zone="prod.example.com",
                                    record="db.prod.example.com", value="pg2.prod.example.com", ttl=60)
    """

    template_fields: Sequence[str] = ("zone", "record", "value", "aws_conn_id", "cluster", "node", "comment",
                                      "dry_run")

    def __init__(self, *, zone: str | None = None, record: str | None = None, value: str | None = None,
                 type: str = "CNAME", ttl: int = 60, hosted_zone_id: str | None = None,
                 aws_conn_id: str | None = "aws_default", cluster: str | None = None, node: str | None = None,
                 insync_timeout: float = 300, comment: str = "drdrill", dry_run: Any = False, **kwargs: Any) -> None:
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
        self.comment = comment
        self.dry_run = dry_run

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
            if not (self.zone and self.record and self.value):
                raise ValueError("give zone, record and value, or cluster and node")
            spec = {"zone": self.zone, "record": self.record, "value": self.value, "type": self.type,
                    "ttl": int(self.ttl), "hosted_zone_id": self.hosted_zone_id,
                    "insync_timeout": float(self.insync_timeout)}
            conn_id = self.aws_conn_id
        if truthy(self.dry_run):
            self.log.info("[DRY RUN] would UPSERT %s -> %s", spec["record"], spec["value"])
            return {"switched": False, "dry_run": True}
        out = route53.Route53Hook(aws_conn_id=conn_id).switch_record(comment=str(self.comment), **spec)
        return {"switched": True, "at": time.time(), **out}
