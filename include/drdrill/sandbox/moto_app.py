"""moto's AWS emulation as a WSGI app, served by gunicorn with TLS for the sandbox.

pgBackRest always speaks TLS to S3 and breaks on plain ``moto_server`` (no close_notify);
gunicorn's gthread worker closes TLS properly. One worker only: moto keeps state in memory.

One gap of moto (5.2) is filled here: S3 gives every new object version the bucket's default
Object Lock retention, including objects written by a multipart upload; moto applies it to
single PUTs only. pgBackRest uploads files above its chunk size in parts, so without this the
sandbox's immutable copy (repo2's bucket) would hold its largest backup files unlocked.
"""

from __future__ import annotations

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import S3Backend

_complete_multipart_upload = S3Backend.complete_multipart_upload


def _complete_with_default_retention(self, bucket_name, multipart_id, body):  # noqa: ANN001, ANN202
    """moto's CompleteMultipartUpload, then the bucket's default retention on the new version (as S3 does)."""
    key = _complete_multipart_upload(self, bucket_name, multipart_id, body)
    bucket = self.get_bucket(bucket_name)
    if key is not None and bucket.has_default_lock and not key.lock_mode:
        key.lock_mode = bucket.default_lock_mode
        key.lock_until = bucket.default_retention()
    return key


if not getattr(S3Backend.complete_multipart_upload, "_drdrill", False):
    _complete_with_default_retention._drdrill = True  # type: ignore[attr-defined]
    S3Backend.complete_multipart_upload = _complete_with_default_retention

app = DomainDispatcherApplication(create_backend_app)
