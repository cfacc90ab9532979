"""Where a pgBackRest repo's storage lives, and whether its endpoint answers at all.

pgBackRest retries an unreachable object store for minutes (nested retries, each bounded by
``io-timeout``: `info` took 80 s, `verify` 320 s with io-timeout 20 against a refused port), so
the daily verification asks each remote repo's endpoint first, with a timeout of a few seconds,
and runs no pgBackRest command against a repo whose endpoint did not answer.

`read_config` reads pgbackrest.conf the way pgBackRest 2.45 resolves it (``--config`` alone, or
the default file plus ``conf.d/*.conf``; sections ``[global]``, ``[global:<command>]``,
``[<stanza>]``, ``[<stanza>:<command>]``; ``PGBACKREST_*`` environment variables win), and
`repo_storage` turns one repo's options into host, port and bucket. Options that look like
secrets (keys, passphrases, tokens) are dropped as the file is read: nothing here holds them.

`probe` asks the endpoint one cheap question: for S3, an unsigned ``HEAD /<bucket>`` through
boto3 (one attempt, connect and read timeouts of ``timeout`` seconds); for GCS and Azure a ``HEAD
/`` through the standard library's HTTPS client; for SFTP the server's SSH banner. Any answer
counts, a 403 included: the probe asks whether the endpoint is alive, not whether pgBackRest may
read it (pgBackRest's own commands judge that, with the repo's real credentials and CA, which the
probe never uses). No answer (refused, no TCP or TLS handshake, no HTTP response within the
timeout) is a dead endpoint.
"""

from __future__ import annotations

import os
import re
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/pgbackrest/pgbackrest.conf")
LEGACY_CONFIG = Path("/etc/pgbackrest.conf")  # pgBackRest's original default, still read when the new one is absent
DEFAULT_INCLUDE_PATH = Path("/etc/pgbackrest/conf.d")
REMOTE_TYPES = ("s3", "gcs", "azure", "sftp")
_REPO_OPTION = re.compile(r"^repo(\d+)-")
_SECRET = re.compile(r"key|pass|secret|token", re.I)


class PgBackRestConfig:
    """pgbackrest.conf as pgBackRest 2.45 resolves it, for one stanza and command."""

    def __init__(self, sections: dict[str, dict[str, str]], files: list[Path], env: dict[str, str] | None = None):
        self.sections = sections
        self.files = files
        self.env = {k: v for k, v in (os.environ if env is None else env).items()
                    if k.startswith("PGBACKREST_") and not _SECRET.search(k)}

    def get(self, option: str, stanza: str, command: str = "info") -> str | None:
        """The option's value: environment, else ``[stanza:command]``, ``[stanza]``, ``[global:command]``, ``[global]``.
        """
        env = None if _SECRET.search(option) else self.env.get("PGBACKREST_" + option.upper().replace("-", "_"))
        if env is not None:
            return env
        for section in (f"{stanza}:{command}", stanza, f"global:{command}", "global"):
            value = self.sections.get(section, {}).get(option)
            if value is not None:
                return value
        return None

    def repo_indexes(self, stanza: str) -> list[int]:
        """The repos configured for the stanza: every N with a ``repoN-*`` option; repo1 when none is."""
        keys = {k for name, opts in self.sections.items()
                if name.split(":")[0] in ("global", stanza) for k in opts}
        keys |= {k[len("PGBACKREST_"):].lower().replace("_", "-") for k in self.env if k.startswith("PGBACKREST_REPO")}
        found = sorted({int(m[1]) for k in keys if (m := _REPO_OPTION.match(k))})
        return found or [1]


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """pgBackRest's ini format: ``[section]``, ``key=value`` (trimmed), ``#`` comments; later values win."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def read_config(config: Path | None, env: dict[str, str] | None = None) -> PgBackRestConfig:
    """Read the files pgBackRest would read for ``--config=config`` (or its defaults when None).

    As pgBackRest does: an explicit config file is read alone; the default one is read with every
    ``*.conf`` in the include directory. Raises `OSError` when a file cannot be read.
    """
    env = dict(os.environ if env is None else env)
    explicit = config or (Path(env["PGBACKREST_CONFIG"]) if env.get("PGBACKREST_CONFIG") else None)
    include = env.get("PGBACKREST_CONFIG_INCLUDE_PATH")
    files: list[Path] = []
    if explicit:
        files.append(Path(explicit))
    else:
        files += [p for p in (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else LEGACY_CONFIG,) if p.exists()]
        include = include or str(DEFAULT_INCLUDE_PATH)
    if include and Path(include).is_dir():
        files += sorted(Path(include).glob("*.conf"))
    sections: dict[str, dict[str, str]] = {}
    for f in files:
        for name, opts in parse_ini(f.read_text()).items():
            sections.setdefault(name, {}).update({k: v for k, v in opts.items() if not _SECRET.search(k)})
    return PgBackRestConfig(sections, files, env)


@dataclass(frozen=True)
class RepoStorage:
    """Where one repo's storage is reached (non-secret options only)."""

    index: int
    type: str
    host: str | None = None  # what the probe connects to
    port: int | None = None
    bucket: str | None = None  # S3 bucket (the probe asks for it), GCS bucket, Azure container
    region: str | None = None

    @property
    def remote(self) -> bool:
        return self.type in REMOTE_TYPES

    @property
    def endpoint(self) -> str:
        """The endpoint as messages name it, e.g. ``https://s3.eu-west-1.amazonaws.com:443``."""
        if not self.remote:
            return self.type
        scheme = "sftp" if self.type == "sftp" else "https"
        return f"{scheme}://{self.host}:{self.port}"


def repo_storage(cfg: PgBackRestConfig, stanza: str, index: int) -> RepoStorage:
    """Repo ``index``'s storage as the config describes it (posix when it names no type, like pgBackRest)."""

    def opt(name: str, default: str | None = None) -> str | None:
        value = cfg.get(f"repo{index}-{name}", stanza)
        return default if value is None else value

    kind = opt("type", "posix") or "posix"
    storage_port = opt("storage-port")
    if kind == "s3":
        host = opt("storage-host") or opt("s3-endpoint")
        return RepoStorage(index, kind, host, int(storage_port or 443), opt("s3-bucket"), opt("s3-region"))
    if kind == "gcs":
        endpoint = opt("gcs-endpoint", "storage.googleapis.com") or ""
        host, _, port = endpoint.partition(":")
        return RepoStorage(index, kind, opt("storage-host") or host, int(storage_port or port or 443),
                           opt("gcs-bucket"))
    if kind == "azure":
        endpoint = opt("azure-endpoint", "blob.core.windows.net")
        account = opt("azure-account")
        host = opt("storage-host") or (f"{account}.{endpoint}" if opt("azure-uri-style", "host") == "host" and account
                                       else endpoint)
        return RepoStorage(index, kind, host, int(storage_port or 443), opt("azure-container"))
    if kind == "sftp":
        return RepoStorage(index, kind, opt("sftp-host"), int(opt("sftp-host-port", "22") or 22))
    return RepoStorage(index, kind)


@dataclass(frozen=True)
class Probe:
    """What a repo's endpoint answered (or did not) within the timeout."""

    repo: int
    endpoint: str
    answered: bool
    seconds: float
    timeout: float
    detail: str  # "HTTP 403 to HEAD /bucket", "could not connect: connection refused", ...

    def to_dict(self) -> dict:
        return {"repo": self.repo, "endpoint": self.endpoint, "answered": self.answered,
                "seconds": round(self.seconds, 3), "timeout": self.timeout, "detail": self.detail}


def probe(storage: RepoStorage, timeout: float) -> Probe:
    """Ask a remote repo's endpoint one cheap question, within ``timeout`` seconds per connect and read."""
    if not storage.remote:
        raise ValueError(f"repo{storage.index} is {storage.type} storage: nothing to probe")
    if not storage.host:
        return Probe(storage.index, storage.endpoint, False, 0.0, timeout,
                     f"pgbackrest.conf names no endpoint for this {storage.type} repo")
    t0 = time.monotonic()
    if storage.type == "s3":
        answered, detail = _probe_s3(storage, timeout)
    elif storage.type == "sftp":
        answered, detail = _probe_ssh_banner(storage, timeout)
    else:
        answered, detail = _probe_https(storage, timeout)
    return Probe(storage.index, storage.endpoint, answered, time.monotonic() - t0, timeout, detail)


def _probe_s3(storage: RepoStorage, timeout: float) -> tuple[bool, str]:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
        SSLError,
    )

    # Unsigned (no credentials read or sent), path style (any endpoint answers it, whatever style the
    # repo uses), certificate not verified (the request carries nothing to protect; a CA store that
    # differs from pgBackRest's must not make a live endpoint look dead), one attempt.
    config = Config(signature_version=UNSIGNED, connect_timeout=timeout, read_timeout=timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
                    proxies={})
    request = f"HEAD /{storage.bucket or ''}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning, see above
        client = boto3.session.Session().client(
            "s3", endpoint_url=f"https://{storage.host}:{storage.port}", region_name=storage.region or "us-east-1",
            config=config, verify=False)
        try:
            if storage.bucket:
                client.head_bucket(Bucket=storage.bucket)
            else:
                client.list_buckets()
            return True, f"HTTP 200 to {request}"
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return True, f"HTTP {status} to {request}"
        except SSLError as e:
            return True, f"answered with a TLS error ({e}); pgBackRest judges the certificate"
        except ConnectTimeoutError:
            return False, "no TCP connection or TLS handshake"
        except ReadTimeoutError:
            return False, f"accepted the connection but did not answer {request} (TLS handshake or HTTP)"
        except EndpointConnectionError as e:
            return False, f"could not connect: {_reason(e)}"
        except ConnectionClosedError:
            return False, f"closed the connection without answering {request}"
        except BotoCoreError as e:
            return False, f"{type(e).__name__}: {e}"


def _probe_https(storage: RepoStorage, timeout: float) -> tuple[bool, str]:
    """TCP connect, TLS handshake, ``HEAD /``: each step within ``timeout`` (the standard library's client)."""
    import http.client
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as for S3: nothing to protect, and a CA store must not fake a dead endpoint
    try:
        sock = socket.create_connection((storage.host, storage.port), timeout=timeout)
    except TimeoutError:
        return False, "no TCP connection"
    except OSError as e:
        return False, f"could not connect: {(e.strerror or str(e)).lower()}"
    try:
        try:
            tls = ctx.wrap_socket(sock, server_hostname=storage.host)
        except TimeoutError:
            return False, "accepted the connection but did not complete a TLS handshake"
        except (ssl.SSLError, OSError) as e:
            return True, f"answered with a TLS error ({e}); pgBackRest judges the certificate"
        conn = http.client.HTTPSConnection(storage.host, storage.port, timeout=timeout, context=ctx)
        conn.sock = tls  # the connection made above, so each step has its own verdict
        try:
            conn.request("HEAD", "/")
            return True, f"HTTP {conn.getresponse().status} to HEAD /"
        except TimeoutError:
            return False, "accepted the connection but did not answer HEAD /"
        except (http.client.HTTPException, OSError) as e:
            return False, f"closed the connection without answering HEAD / ({type(e).__name__})"
        finally:
            conn.close()
    finally:
        sock.close()


def _probe_ssh_banner(storage: RepoStorage, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((storage.host, storage.port), timeout=timeout) as s:
            s.settimeout(timeout)
            banner = s.recv(256).decode(errors="replace").strip()
    except TimeoutError:
        return False, "accepted the connection but sent no SSH banner"
    except OSError as e:
        return False, f"could not connect: {e.strerror or e}"
    if banner.startswith("SSH-"):
        return True, f"SSH banner {banner.splitlines()[0][:60]!r}"
    return False, f"answered {banner[:60]!r}, not an SSH banner" if banner else "closed the connection without a banner"


def _reason(e: Exception) -> str:
    """The innermost OS reason of a connection error ('connection refused'), else the message."""
    inner = getattr(e, "kwargs", {}).get("error")  # botocore keeps urllib3's error there
    text = str(inner if inner is not None else e)
    for pattern in (r"\[Errno -?\d+\] ([^'\")]+)", r"Errno \d+\) ([^'\")]+)"):
        m = re.search(pattern, text)
        if m:
            return m[1].strip().rstrip(".").lower()
    return text
