"""The service endpoint record in Route53: read it, switch it to a node, wait until INSYNC.

Through the amazon provider's `AwsBaseHook` (client ``route53``), so the Airflow connection
decides where the API is: AWS in production, moto in the sandbox (``endpoint_url`` in the
connection's extra). The change is an UPSERT of one record, the runbook's
``aws route53 change-resource-record-sets`` step, and is reverted the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from drdrill.core.errors import DrillError, PreflightError
from drdrill.core.estate import Dns, Node

log = logging.getLogger(__name__)


def client(dns: Dns) -> Any:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(aws_conn_id=dns.conn_id, client_type="route53").get_conn()


def zone_id(dns: Dns, r53: Any) -> str:
    if dns.hosted_zone_id:
        return dns.hosted_zone_id
    found = r53.list_hosted_zones_by_name(DNSName=dns.zone + ".").get("HostedZones", [])
    ids = [z["Id"].split("/")[-1] for z in found if z["Name"].rstrip(".").lower() == dns.zone]
    if not ids:
        raise PreflightError(f"Route53 has no hosted zone {dns.zone!r} (connection {dns.conn_id!r}); "
                             f"check the zone name in the estate or the connection's account/endpoint")
    if len(ids) > 1:
        raise PreflightError(f"Route53 has {len(ids)} hosted zones named {dns.zone!r} ({ids}), e.g. a private "
                             f"and a public one: set failover.dns.hosted_zone_id in the estate")
    return ids[0]


def value_for(dns: Dns, node: Node) -> str:
    """What the record must hold for ``node`` to be the endpoint."""
    if dns.type == "CNAME":
        if not node.dns_name:
            raise PreflightError(f"node {node.name} has no dns_name; a CNAME service record needs one per node")
        return node.dns_name.rstrip(".").lower()
    return node.host


@dataclass(frozen=True)
class RecordState:
    zone_id: str
    value: str | None
    ttl: int | None


def current(dns: Dns, r53: Any | None = None) -> RecordState:
    r53 = r53 or client(dns)
    zid = zone_id(dns, r53)
    resp = r53.list_resource_record_sets(HostedZoneId=zid, StartRecordName=dns.record + ".",
                                         StartRecordType=dns.type, MaxItems="1")
    for rs in resp.get("ResourceRecordSets", []):
        if rs["Name"].rstrip(".").lower() == dns.record and rs["Type"] == dns.type:
            values = [r["Value"].rstrip(".").lower() for r in rs.get("ResourceRecords", [])]
            return RecordState(zid, values[0] if values else None, rs.get("TTL"))
    return RecordState(zid, None, None)


def node_for_value(nodes: list[Node], dns: Dns, value: str | None) -> Node | None:
    for n in nodes:
        try:
            if value and value_for(dns, n) == value:
                return n
        except PreflightError:
            continue
    return None


def switch(dns: Dns, node: Node, *, comment: str, r53: Any | None = None) -> dict[str, Any]:
    """UPSERT the record to ``node`` and wait until Route53 reports the change INSYNC."""
    r53 = r53 or client(dns)
    before = current(dns, r53)
    value = value_for(dns, node)
    t0 = time.time()
    resp = r53.change_resource_record_sets(HostedZoneId=before.zone_id, ChangeBatch={
        "Comment": comment[:256],
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": dns.record + ".", "Type": dns.type, "TTL": dns.ttl, "ResourceRecords": [{"Value": value}]}}]})
    change_id = resp["ChangeInfo"]["Id"].split("/")[-1]
    log.info("Route53 UPSERT %s %s -> %s (was %s), change %s", dns.record, dns.type, value, before.value, change_id)
    deadline = time.monotonic() + dns.insync_timeout_seconds
    status = resp["ChangeInfo"]["Status"]
    while status != "INSYNC":
        if time.monotonic() > deadline:
            raise DrillError(f"Route53 change {change_id} for {dns.record} still {status} after "
                             f"{dns.insync_timeout_seconds:.0f}s; check the zone in the AWS console")
        time.sleep(1)
        status = r53.get_change(Id=change_id)["ChangeInfo"]["Status"]
    after = current(dns, r53)
    if after.value != value:
        raise DrillError(f"Route53 reports {dns.record} = {after.value!r} after the change, expected {value!r}")
    return {"record": dns.record, "type": dns.type, "from": before.value, "to": value, "change_id": change_id,
            "insync_seconds": round(time.time() - t0, 3), "ttl": dns.ttl}
