"""S3 Object Lock on an immutable copy: the bucket's lock configuration, versioning, the newest
objects' retention, and a refused-delete probe.

`ObjectLockHook` is the amazon provider's `S3Hook`, so the Airflow connection decides where S3 is:
AWS in production, moto in the sandbox (``endpoint_url`` in the connection's extra). It reads only
what S3 reports; the verdicts are the drill's (`drdrill.drills.backups.object_lock`).

A retention is read with ``head_object`` (``ObjectLockMode``, ``ObjectLockRetainUntilDate``), which
needs only ``s3:GetObject``-level access and works on moto, where ``get_object_retention`` does not.
Every AWS error becomes an `ObjectLockError` naming the bucket, what was asked and the fix, with the
error ``code`` kept so callers can tell a missing bucket from a missing permission.

Permissions the checks need: ``s3:GetBucketObjectLockConfiguration``, ``s3:GetBucketVersioning``,
``s3:ListBucket``, ``s3:GetObject`` (+ ``s3:GetObjectVersion``), and for the probe ``s3:PutObject``
and ``s3:DeleteObjectVersion`` (the delete the lock must refuse).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import BotoCoreError, ClientError

from drdrill.core.errors import DrillError

log = logging.getLogger(__name__)

# What each call needs, named in an AccessDenied message.
_PERMISSION = {
    "get_object_lock_configuration": "s3:GetBucketObjectLockConfiguration",
    "get_bucket_versioning": "s3:GetBucketVersioning",
    "list_objects_v2": "s3:ListBucket",
    "head_object": "s3:GetObject and s3:GetObjectVersion",
    "put_object": "s3:PutObject",
}
NO_LOCK_CONFIG = "ObjectLockConfigurationNotFoundError"
DENIED = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
MISSING_BUCKET = {"NoSuchBucket"}


class ObjectLockError(DrillError):
    """S3 refused or failed a call on the bucket; ``code`` is the AWS error code (``NoSuchBucket``, ...)."""

    def __init__(self, message: str, *, bucket: str, code: str, answered: bool = True) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.code = code
        self.answered = answered  # False: S3 never answered (endpoint, credentials, TLS)

    @property
    def missing_bucket(self) -> bool:
        return self.code in MISSING_BUCKET

    @property
    def nothing_readable(self) -> bool:
        """No other call on this bucket can succeed either: it does not exist, or S3 does not answer."""
        return self.missing_bucket or not self.answered


@dataclass(frozen=True)
class LockConfiguration:
    """A bucket's Object Lock configuration as S3 reports it (``enabled`` False: no configuration)."""

    enabled: bool
    mode: str | None = None  # the default retention's mode: COMPLIANCE or GOVERNANCE
    days: int | None = None
    years: int | None = None

    @property
    def retention_days(self) -> int | None:
        """The default retention in days (a year counts 365, as S3 counts it), None without a default.

        S3 sets one of Days and Years; moto reports the other as 0, so a 0 counts as unset.
        """
        if self.days:
            return self.days
        if self.years:
            return self.years * 365
        return None


@dataclass(frozen=True)
class ObjectRetention:
    """One object's current version and the lock on it, from ``head_object``."""

    key: str
    version_id: str | None
    last_modified: dt.datetime
    mode: str | None
    retain_until: dt.datetime | None
    legal_hold: bool = False


@dataclass(frozen=True)
class ProbeResult:
    """A probe object written to the bucket and what S3 answered to deleting its version."""

    key: str
    version_id: str | None
    mode: str | None
    retain_until: dt.datetime | None
    refused: bool  # True: the delete was refused (the lock holds); False: the version is gone
    error_code: str | None = None
    error_message: str | None = None


class ObjectLockHook(S3Hook):
    """S3 Object Lock through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection (``endpoint_url`` in its extra for moto or a proxy)

    Usage::

        hook = ObjectLockHook(aws_conn_id="aws_default")
        hook.lock_configuration("my-backups")        # LockConfiguration(enabled=True, mode="COMPLIANCE", days=30)
        hook.versioning("my-backups")                # "Enabled"
        hook.newest_objects("my-backups", "pgbackrest/backup/main/", 5)
        hook.delete_probe("my-backups")              # ProbeResult(refused=True, ...)
    """

    # ---------------------------------------------------------------- errors
    def _error(self, exc: ClientError | BotoCoreError, bucket: str, call: str, key: str | None = None
               ) -> ObjectLockError:
        where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
        conn = f"connection {self.aws_conn_id!r}"
        if isinstance(exc, BotoCoreError):  # no answer at all: endpoint, credentials, TLS
            return ObjectLockError(f"S3 {call} on {where} failed ({conn}): {type(exc).__name__}: {exc}. Fix: check "
                                   f"the connection's endpoint, region and credentials", bucket=bucket,
                                   code=type(exc).__name__, answered=False)
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
        text = err.get("Message") or str(exc)
        if code in MISSING_BUCKET:
            msg = (f"S3 bucket {bucket!r} does not exist ({conn}): check the bucket name in the estate, "
                   f"and the connection's account, region and endpoint")
        elif code in DENIED:
            msg = (f"{conn} may not {call} on {where} (AccessDenied: {text}): grant its role "
                   f"{_PERMISSION.get(call, 's3:' + call)} on arn:aws:s3:::{bucket}"
                   + ("/*" if call in ("head_object", "put_object") else ""))
        else:
            msg = f"S3 {call} on {where} failed ({conn}): {code}: {text}"
        return ObjectLockError(msg, bucket=bucket, code=code)

    # ---------------------------------------------------------------- bucket
    def lock_configuration(self, bucket: str) -> LockConfiguration:
        """The bucket's Object Lock configuration; ``enabled=False`` when the bucket has none."""
        try:
            resp = self.conn.get_object_lock_configuration(Bucket=bucket)
        except (ClientError, BotoCoreError) as e:
            if isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") == NO_LOCK_CONFIG:
                return LockConfiguration(enabled=False)
            raise self._error(e, bucket, "get_object_lock_configuration") from None
        cfg = resp.get("ObjectLockConfiguration", {})
        default = cfg.get("Rule", {}).get("DefaultRetention", {})
        return LockConfiguration(enabled=cfg.get("ObjectLockEnabled") == "Enabled", mode=default.get("Mode"),
                                 days=default.get("Days"), years=default.get("Years"))

    def versioning(self, bucket: str) -> str:
        """``Enabled``, ``Suspended``, or ``Disabled`` (versioning never turned on)."""
        try:
            return self.conn.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled"
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, bucket, "get_bucket_versioning") from None

    # ---------------------------------------------------------------- objects
    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectRetention:
        """One object's (or version's) retention from ``head_object``."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            h = self.conn.head_object(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, bucket, "head_object", key) from None
        return ObjectRetention(key=key, version_id=h.get("VersionId"), last_modified=h["LastModified"],
                               mode=h.get("ObjectLockMode"), retain_until=h.get("ObjectLockRetainUntilDate"),
                               legal_hold=h.get("ObjectLockLegalHoldStatus") == "ON")

    def newest_objects(self, bucket: str, prefix: str, count: int) -> list[ObjectRetention]:
        """The ``count`` most recently written objects under ``prefix``, newest first, with their retention.

        Lists every key under the prefix (paginated), so give a prefix that holds the backups, not the
        whole bucket.
        """
        if count <= 0:
            return []
        listed: list[dict[str, Any]] = []
        try:
            for page in self.conn.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                listed += page.get("Contents", [])
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, bucket, "list_objects_v2") from None
        listed.sort(key=lambda o: (o["LastModified"], o["Key"]), reverse=True)
        return [self.head(bucket, o["Key"]) for o in listed[:count]]

    # ---------------------------------------------------------------- probe
    def delete_probe(self, bucket: str, prefix: str = "drdrill/object-lock-probe/") -> ProbeResult:
        """Write a small probe object (it takes the bucket's default retention) and try to delete its version.

        A refusal (``AccessDenied``) means the lock holds; a delete that succeeds means anyone with
        ``s3:DeleteObjectVersion`` can destroy the copy. A refused probe stays in the bucket until
        its retention ends (one small object per run). The delete is a plain ``DeleteObject`` with
        the version id and no ``x-amz-bypass-governance-retention``.
        """
        key = f"{prefix}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"
        body = f"drdrill Object Lock probe {key}\n".encode()
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        try:  # Content-MD5: S3 requires it (or a checksum) on a PUT to a bucket with default retention
            put = self.conn.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=md5)
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, bucket, "put_object", key) from None
        version = put.get("VersionId")
        if version in ("null", ""):
            version = None
        probe = self.head(bucket, key, version)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version:
            kwargs["VersionId"] = version
        try:
            self.conn.delete_object(**kwargs)
        except ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code") or "")
            log.info("probe s3://%s/%s version %s: delete refused (%s)", bucket, key, version, code)
            return ProbeResult(key, version, probe.mode, probe.retain_until, refused=code in DENIED,
                               error_code=code, error_message=err.get("Message") or str(e))
        except BotoCoreError as e:
            raise self._error(e, bucket, "delete_object", key) from None
        log.warning("probe s3://%s/%s version %s: the delete SUCCEEDED", bucket, key, version)
        return ProbeResult(key, version, probe.mode, probe.retain_until, refused=False)
