"""The sandbox's AWS: moto's S3, Route53 and AWS Backup under gunicorn over TLS, on one loopback port.

Owns the moto server (its self-signed ``localhost`` certificate, start and stop by PID), the
bucket pgBackRest's repo2 lives in, the Route53 hosted zone with the database's service record,
the AWS Backup vaults, vault lock and plan the estate's ``backups.aws_backup`` entries on this moto
describe, and the Airflow connection (`CONN_ID`) that points drills at it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

from drdrill.core.backups import AwsBackup
from drdrill.core.errors import DrillError
from drdrill.core.estate import Cluster, Dns
from drdrill.core.paths import PROJECT_ROOT
from drdrill.core.runner import LocalRunner
from drdrill.sandbox.layout import Layout, pid_alive, read_pid, recorded_pid, wait_for_exit

log = logging.getLogger("drdrill.sandbox")

BUCKET = "drdrill-sandbox-repo2"
# repo2's bucket is the sandbox's immutable copy: S3 Object Lock, COMPLIANCE, this default retention.
LOCK_MODE = "COMPLIANCE"
LOCK_DAYS = 30
REGION = "us-east-1"
# The Airflow connection to the sandbox's moto (S3 and Route53); `airflow_env()` defines it.
CONN_ID = "aws_sandbox"


def lock_bucket(s3, bucket: str, *, mode: str = LOCK_MODE, days: int = LOCK_DAYS) -> None:
    """Create ``bucket`` immutable: Object Lock on (at creation: it cannot be turned on later without
    AWS support), versioning Enabled, default retention ``mode`` for ``days``.

    Every object version written then carries a retain-until date; under COMPLIANCE no one can
    delete a version before it. pgBackRest (2.45) still works on it: it sends Content-MD5 with every
    PUT, multipart parts and completion included (S3 requires it, or a checksum, on a bucket with
    a default retention; seen in its trace log), and its deletes (expire, rewritten info files)
    carry no version id, so S3 adds delete markers and keeps the locked versions.
    """
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}})


class Moto:
    """moto's S3 and Route53 on ``https://localhost:<port>``, and what the sandbox keeps in them."""

    def __init__(self, cluster: Cluster, dns: Dns | None, layout: Layout, port: int, source: object,
                 aws_backup: list[AwsBackup] | None = None) -> None:
        self.cluster = cluster
        self.aws_backup = list(aws_backup or [])  # the estate's AWS Backup entries on this moto (CONN_ID)
        self.dns = dns
        self.layout = layout
        self.port = port
        self.source = source  # the estate file, named in error messages

    @property
    def endpoint(self) -> str:
        return f"https://localhost:{self.port}"

    def pid(self) -> int | None:
        """The recorded gunicorn PID if it is running."""
        return recorded_pid(self.layout.pidfile("moto"))

    # ---------------------------------------------------------------- server
    def tls(self) -> None:
        """A self-signed cert for ``DNS:localhost``: pgBackRest 2.45 does not match IP SANs."""
        L = self.layout
        if L.ca.exists() and L.key.exists():
            return
        LocalRunner(None).run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                               "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                               "-keyout", str(L.key), "-out", str(L.ca)], timeout=60)
        L.ca.chmod(0o644)

    def start(self) -> None:
        """gunicorn (own session, recorded by PID) serving moto; returns once S3 answers, with the bucket."""
        L, port = self.layout, self.port
        logf = open(L.logs / "moto.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "MOTO_ALLOW_NONEXISTENT_REGION": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "8", "-w", "1",
             "--keep-alive", "75", "--certfile", str(L.ca), "--keyfile", str(L.key),
             "-b", f"127.0.0.1:{port}", "--log-level", "warning", "drdrill.sandbox.moto_app:app"],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
            cwd=L.root)
        L.pidfile("moto").write_text(str(proc.pid))
        s3 = self.s3_client()
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.list_buckets()
                break
            except Exception as e:  # noqa: BLE001 - any failure means "not up yet"
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DrillError(f"moto S3 did not start on port {port}: {e}; see "
                                     f"{L.logs / 'moto.log'}") from None
                time.sleep(0.2)
        lock_bucket(s3, BUCKET)
        log.info("S3 (moto over TLS) up on https://localhost:%s, pid %s, bucket %s (Object Lock %s, %s days)",
                 port, proc.pid, BUCKET, LOCK_MODE, LOCK_DAYS)

    def stop(self) -> None:
        """SIGTERM to gunicorn's process group (its worker too); moto's state is in memory and goes with it."""
        pid = read_pid(self.layout.pidfile("moto"))
        if pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)
            wait_for_exit(pid, 50)
            log.info("moto S3 stopped (pid %s)", pid)

    # ---------------------------------------------------------------- clients
    def s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.layout.secret("s3-key"),
                            aws_secret_access_key=self.layout.secret("s3-key-secret"), verify=str(self.layout.ca))

    def route53_client(self):
        import boto3

        # moto's Route53 takes any key (no secret here: the record is not confidential).
        return boto3.client("route53", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            verify=str(self.layout.ca))

    def backup_client(self, region: str | None = None):
        import boto3

        # moto's AWS Backup takes any key, like Route53.
        return boto3.client("backup", endpoint_url=self.endpoint, region_name=region or REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing", verify=str(self.layout.ca))

    def airflow_env(self) -> dict[str, str]:
        """The Airflow connection to this sandbox's moto (S3 and Route53 over TLS), as env vars.

        moto accepts any key, so login/password are placeholders; the CA is the sandbox's own
        self-signed certificate, by absolute path (Airflow may run from another directory).
        """
        conn = {"conn_type": "aws", "login": "testing", "password": "testing",
                "extra": {"endpoint_url": self.endpoint, "region_name": REGION,
                          "verify": str(self.layout.ca.resolve())}}
        return {f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(conn)}

    # ---------------------------------------------------------------- Route53
    def zone_id(self, r53) -> str | None:
        assert self.dns is not None
        zones = r53.list_hosted_zones_by_name(DNSName=self.dns.zone)["HostedZones"]
        ids = [z["Id"].split("/")[-1] for z in zones if z["Name"].rstrip(".").lower() == self.dns.zone]
        return ids[0] if ids else None

    def create_records(self) -> None:
        """The hosted zone, the service record -> the primary's dns_name, and an A record per node."""
        dns = self.dns
        if dns is None:
            return
        primary = self.cluster.primary
        if not primary.dns_name:
            raise DrillError(f"{self.source}: node {primary.name} needs dns_name (failover.dns is set)")
        r53 = self.route53_client()
        zone_id = self.zone_id(r53) or r53.create_hosted_zone(
            Name=dns.zone, CallerReference=f"drdrill-sandbox-{time.time_ns()}",
            HostedZoneConfig={"Comment": "drdrill sandbox", "PrivateZone": False})["HostedZone"]["Id"].split("/")[-1]
        target = primary.dns_name if dns.type == "CNAME" else primary.host
        changes = [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": dns.record, "Type": dns.type, "TTL": dns.ttl, "ResourceRecords": [{"Value": target}]}}]
        for node in self.cluster.members:  # cosmetic: nothing resolves these in the sandbox
            if node.dns_name:
                changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                    "Name": node.dns_name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": node.host}]}})
        r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": "drdrill sandbox bring-up", "Changes": changes})
        log.info("Route53 zone %s (%s): %s %s -> %s (TTL %ss)", dns.zone, zone_id, dns.record, dns.type, target,
                 dns.ttl)

    def dns_record(self) -> dict | None:
        """The service record as Route53 has it now (``value`` None when it is missing)."""
        dns = self.dns
        if dns is None:
            return None
        out = {"zone": dns.zone, "record": dns.record, "type": dns.type, "ttl": None, "value": None}
        r53 = self.route53_client()
        zone_id = self.zone_id(r53)
        if zone_id:
            sets = r53.list_resource_record_sets(HostedZoneId=zone_id, StartRecordName=dns.record,
                                                 MaxItems="10")["ResourceRecordSets"]
            for rs in sets:
                if rs["Name"].rstrip(".").lower() == dns.record and rs["Type"] == dns.type:
                    out["ttl"] = rs.get("TTL")
                    out["value"] = ", ".join(r["Value"] for r in rs.get("ResourceRecords", []))
        return out

    # ---------------------------------------------------------------- AWS Backup
    def create_backup_vaults(self) -> None:
        """What the estate's AWS Backup entries on this moto describe, created when missing (idempotent):
        the vault with its vault lock, the DR vault in its region, and the plan with its rules.

        The lock is put in compliance mode with the shortest grace period AWS allows (3 days): moto,
        like AWS, keeps it changeable until its LockDate, so a fresh sandbox's lock is not yet immutable.
        """
        from drdrill.drills.backups.aws_backup import plan_document

        for e in self.aws_backup:
            bk = self.backup_client(e.region)
            names = {v["BackupVaultName"] for v in bk.list_backup_vaults()["BackupVaultList"]}
            if e.vault not in names:
                bk.create_backup_vault(BackupVaultName=e.vault, BackupVaultTags={"Environment": "production"})
                if e.vault_lock is not None:
                    bk.put_backup_vault_lock_configuration(
                        BackupVaultName=e.vault, MinRetentionDays=e.vault_lock.min_retention_days,
                        MaxRetentionDays=e.vault_lock.max_retention_days, ChangeableForDays=3)
            if e.dr_vault is not None:
                dr = self.backup_client(e.dr_vault.region)
                if e.dr_vault.name not in {v["BackupVaultName"] for v in dr.list_backup_vaults()["BackupVaultList"]}:
                    dr.create_backup_vault(BackupVaultName=e.dr_vault.name)
            if e.plan is not None:
                plans = {p.get("BackupPlanName") for p in bk.list_backup_plans()["BackupPlansList"]}
                if e.plan.name not in plans:
                    bk.create_backup_plan(BackupPlan=plan_document(e.plan, e.vault))
            log.info("AWS Backup (moto) %s: vault %s (locked), plan %s, DR vault %s", e.name, e.vault,
                     e.plan.name if e.plan else "-", f"{e.dr_vault.name} ({e.dr_vault.region})" if e.dr_vault else "-")

    # ---------------------------------------------------------------- health
    def problems(self) -> list[str]:
        return [] if self.pid() else ["S3 (moto) not running"]

    def status(self) -> dict:
        return {"name": "s3 (moto, TLS)", "role": "repo2 endpoint", "port": self.port, "pid": self.pid(),
                "state": ""}
