"""The service endpoint record in Route53: read it, switch it, wait until INSYNC.

`Route53Hook` is the amazon provider's `AwsBaseHook` with the ``route53`` client, so the
Airflow connection decides where the API is: AWS in production, moto in the sandbox
(``endpoint_url`` in the connection's extra). A switch is an UPSERT of one record, the
runbook's ``aws route53 change-resource-record-sets`` step, and is reverted the same way.

The functions at the bottom take the estate's `Dns` block and nodes (what the drills use).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.estate import Dns, Node

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordState:
    zone_id: str
    value: str | None
    ttl: int | None


class Route53Hook(AwsBaseHook):
    """Route53 through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection (``endpoint_url`` in its extra for moto or a proxy)

    Usage::

        hook = Route53Hook(aws_conn_id="aws_default")
        hook.switch_record(zone="prod.example.com", record="db.prod.example.com", value="pg2.prod.example.com")
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "route53"
        super().__init__(*args, **kwargs)

    def zone_id(self, zone: str, hosted_zone_id: str | None = None) -> str:
        """The id of the hosted zone named ``zone``; refuses an unknown or ambiguous name."""
        if hosted_zone_id:
            return hosted_zone_id
        zone = zone.rstrip(".").lower()
        found = self.conn.list_hosted_zones_by_name(DNSName=zone + ".").get("HostedZones", [])
        ids = [z["Id"].split("/")[-1] for z in found if z["Name"].rstrip(".").lower() == zone]
        if not ids:
            raise PreflightError(f"Route53 has no hosted zone {zone!r} (connection {self.aws_conn_id!r}); check the "
                                 f"zone name or the connection's account/endpoint")
        if len(ids) > 1:
            raise PreflightError(f"Route53 has {len(ids)} hosted zones named {zone!r} ({ids}), e.g. a private and a "
                                 f"public one: give the hosted zone id")
        return ids[0]

    def record(self, *, zone: str, record: str, type: str = "CNAME", hosted_zone_id: str | None = None
               ) -> RecordState:
        """The record's current value (lower case, no trailing dot) and TTL."""
        record = record.rstrip(".").lower()
        zid = self.zone_id(zone, hosted_zone_id)
        resp = self.conn.list_resource_record_sets(HostedZoneId=zid, StartRecordName=record + ".",
                                                   StartRecordType=type, MaxItems="1")
        for rs in resp.get("ResourceRecordSets", []):
            if rs["Name"].rstrip(".").lower() == record and rs["Type"] == type:
                values = [r["Value"].rstrip(".").lower() for r in rs.get("ResourceRecords", [])]
                return RecordState(zid, values[0] if values else None, rs.get("TTL"))
        return RecordState(zid, None, None)

    def upsert_record(self, *, zone: str, record: str, value: str, type: str = "CNAME", ttl: int = 60,
                      comment: str = "drdrill", hosted_zone_id: str | None = None) -> dict[str, Any]:
        """UPSERT ``record`` to ``value``; returns the change (``change_id``, ``status``) and what it replaced."""
        record = record.rstrip(".").lower()
        value = value.rstrip(".").lower()
        before = self.record(zone=zone, record=record, type=type, hosted_zone_id=hosted_zone_id)
        t0 = time.time()
        resp = self.conn.change_resource_record_sets(HostedZoneId=before.zone_id, ChangeBatch={
            "Comment": comment[:256],
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": record + ".", "Type": type, "TTL": ttl, "ResourceRecords": [{"Value": value}]}}]})
        change_id = resp["ChangeInfo"]["Id"].split("/")[-1]
        log.info("Route53 UPSERT %s %s -> %s (was %s), change %s", record, type, value, before.value, change_id)
        return {"record": record, "type": type, "from": before.value, "to": value, "change_id": change_id,
                "status": resp["ChangeInfo"]["Status"], "zone_id": before.zone_id, "ttl": ttl, "sent_at": t0}

    def change_status(self, change_id: str) -> str:
        return self.conn.get_change(Id=change_id)["ChangeInfo"]["Status"]

    def wait_insync(self, change: dict[str, Any], *, timeout: float, poll_interval: float = 1.0) -> bool:
        """Poll the change here for at most ``timeout`` seconds; True once INSYNC."""
        deadline = time.monotonic() + timeout
        status = change["status"]
        while status != "INSYNC":
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_interval)
            status = self.change_status(change["change_id"])
        return True

    def confirm(self, change: dict[str, Any], *, zone: str) -> dict[str, Any]:
        """After INSYNC: the record read back must hold the new value."""
        after = self.record(zone=zone, record=change["record"], type=change["type"], hosted_zone_id=change["zone_id"])
        if after.value != change["to"]:
            raise DrillError(f"Route53 reports {change['record']} = {after.value!r} after the change, "
                             f"expected {change['to']!r}")
        return {k: change[k] for k in ("record", "type", "from", "to", "change_id", "ttl")} | {
            "insync_seconds": round(time.time() - change["sent_at"], 3)}

    def switch_record(self, *, zone: str, record: str, value: str, type: str = "CNAME", ttl: int = 60,
                      comment: str = "drdrill", hosted_zone_id: str | None = None,
                      insync_timeout: float = 300, poll_interval: float = 1.0) -> dict[str, Any]:
        """UPSERT ``record`` to ``value``, wait here until Route53 reports INSYNC, read it back.

        Blocks a worker slot while Route53 propagates (typically under a minute): operators defer
        instead (`Route53RecordSwitchOperator`); this is for steps that must finish in one task
        (the rollback's revert).
        """
        change = self.upsert_record(zone=zone, record=record, value=value, type=type, ttl=ttl, comment=comment,
                                    hosted_zone_id=hosted_zone_id)
        if not self.wait_insync(change, timeout=insync_timeout, poll_interval=poll_interval):
            raise DrillError(f"Route53 change {change['change_id']} for {change['record']} not INSYNC after "
                             f"{insync_timeout:.0f}s; check the zone in the AWS console")
        return self.confirm(change, zone=zone)


# ------------------------------------------------------------------------- estate-level helpers
def client(dns: Dns) -> Route53Hook:
    return Route53Hook(aws_conn_id=dns.conn_id)


def value_for(dns: Dns, node: Node) -> str:
    """What the record must hold for ``node`` to be the endpoint."""
    if dns.type == "CNAME":
        if not node.dns_name:
            raise PreflightError(f"node {node.name} has no dns_name; a CNAME service record needs one per node")
        return node.dns_name.rstrip(".").lower()
    return node.host


def current(dns: Dns, r53: Route53Hook | None = None) -> RecordState:
    return (r53 or client(dns)).record(zone=dns.zone, record=dns.record, type=dns.type,
                                       hosted_zone_id=dns.hosted_zone_id)


def node_for_value(nodes: list[Node], dns: Dns, value: str | None) -> Node | None:
    for n in nodes:
        try:
            if value and value_for(dns, n) == value:
                return n
        except PreflightError:
            continue
    return None


def switch(dns: Dns, node: Node, *, comment: str, r53: Route53Hook | None = None) -> dict[str, Any]:
    """UPSERT the service record to ``node`` and wait until Route53 reports the change INSYNC."""
    return (r53 or client(dns)).switch_record(zone=dns.zone, record=dns.record, value=value_for(dns, node),
                                              type=dns.type, ttl=dns.ttl, comment=comment,
                                              hosted_zone_id=dns.hosted_zone_id,
                                              insync_timeout=dns.insync_timeout_seconds)
