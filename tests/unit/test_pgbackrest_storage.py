"""Where a repo lives (pgbackrest.conf read as pgBackRest 2.45 resolves it) and the endpoint probe.

The probes meet real sockets on loopback: a closed port, a server that accepts and never answers,
and a server that sends an SSH banner. The S3 probe against a live S3 (moto over TLS) is in
tests/integration/test_dead_repo.py.
"""

from __future__ import annotations

import socket
import threading

import pytest

from drdrill.hooks import pgbackrest_storage as st
from drdrill.hooks.pgbackrest_storage import RepoStorage, parse_ini, probe, read_config, repo_storage
from drdrill.sandbox.faults import Blackhole, closed_port

CONF = """\
# comment
[global]
repo1-path=/var/lib/pgbackrest
repo2-type = s3
repo2-s3-bucket=acme-dr
repo2-s3-endpoint=s3.eu-west-1.amazonaws.com
repo2-s3-region=eu-west-1
repo2-s3-key=AKIAEXAMPLE
repo2-s3-key-secret=do-not-read-me
io-timeout=20

[global:archive-push]
repo2-s3-endpoint=push.example.com

[main]
pg1-path=/var/lib/postgresql/15/main
repo3-type=sftp
repo3-sftp-host=backup.example.com

[other]
repo4-type=gcs
"""


def test_ini_is_parsed_like_pgbackrest_trimmed_with_later_values_winning():
    sections = parse_ini("[global]\n a = 1 \n#x=2\na=3\n\n[s]\nb=c=d\n")
    assert sections == {"global": {"a": "3"}, "s": {"b": "c=d"}}


def test_stanza_beats_command_section_beats_global_and_environment_beats_all(tmp_path):
    f = tmp_path / "pgbackrest.conf"
    f.write_text(CONF + "[main:info]\nrepo2-s3-region=us-east-1\n")
    cfg = read_config(f, env={})
    assert cfg.get("repo2-s3-endpoint", "main") == "s3.eu-west-1.amazonaws.com"
    assert cfg.get("repo2-s3-endpoint", "main", "archive-push") == "push.example.com"
    assert cfg.get("repo2-s3-region", "main") == "us-east-1"  # [main:info]
    assert cfg.get("repo2-s3-region", "main", "verify") == "eu-west-1"
    env = read_config(f, env={"PGBACKREST_REPO2_S3_ENDPOINT": "s3.env.example.com"})
    assert env.get("repo2-s3-endpoint", "main") == "s3.env.example.com"


def test_repos_of_a_stanza_are_those_its_sections_and_the_environment_name(tmp_path):
    f = tmp_path / "pgbackrest.conf"
    f.write_text(CONF)
    assert read_config(f, env={}).repo_indexes("main") == [1, 2, 3]
    assert read_config(f, env={"PGBACKREST_REPO5_PATH": "/x"}).repo_indexes("main") == [1, 2, 3, 5]
    empty = tmp_path / "empty.conf"
    empty.write_text("[global]\nlog-level-file=info\n")
    assert read_config(empty, env={}).repo_indexes("main") == [1]  # pgBackRest's default repo1


def test_an_explicit_config_is_read_alone_unless_an_include_path_is_given(tmp_path):
    f = tmp_path / "pgbackrest.conf"
    f.write_text(CONF)
    inc = tmp_path / "conf.d"
    inc.mkdir()
    (inc / "repo9.conf").write_text("[global]\nrepo9-type=azure\n")
    (inc / "ignored.txt").write_text("[global]\nrepo8-type=azure\n")
    assert 9 not in read_config(f, env={}).repo_indexes("main")
    cfg = read_config(f, env={"PGBACKREST_CONFIG_INCLUDE_PATH": str(inc)})
    assert cfg.repo_indexes("main") == [1, 2, 3, 9] and cfg.files == [f, inc / "repo9.conf"]


def test_without_config_the_default_file_and_its_include_directory_are_read(tmp_path, monkeypatch):
    etc = tmp_path / "etc" / "pgbackrest"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "pgbackrest.conf").write_text(CONF)
    (etc / "conf.d" / "extra.conf").write_text("[main]\nrepo2-storage-port=9000\n")
    monkeypatch.setattr(st, "DEFAULT_CONFIG", etc / "pgbackrest.conf")
    monkeypatch.setattr(st, "DEFAULT_INCLUDE_PATH", etc / "conf.d")
    cfg = read_config(None, env={})
    assert repo_storage(cfg, "main", 2).port == 9000


def test_unreadable_config_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        read_config(tmp_path / "missing.conf", env={})


def test_repo_storage_per_type(tmp_path):
    f = tmp_path / "pgbackrest.conf"
    f.write_text(CONF + "[main]\nrepo5-type=s3\nrepo5-s3-endpoint=minio.local\nrepo5-storage-host=10.0.0.5\n"
                 "repo5-storage-port=9000\nrepo5-s3-bucket=b\n"
                 "repo6-type=azure\nrepo6-azure-account=acme\nrepo6-azure-container=c\n"
                 "repo7-type=gcs\nrepo7-gcs-endpoint=gcs.local:4443\n")
    cfg = read_config(f, env={})
    assert repo_storage(cfg, "main", 1) == RepoStorage(1, "posix")
    assert not repo_storage(cfg, "main", 1).remote
    s3 = repo_storage(cfg, "main", 2)
    assert (s3.host, s3.port, s3.bucket, s3.region) == ("s3.eu-west-1.amazonaws.com", 443, "acme-dr", "eu-west-1")
    assert s3.endpoint == "https://s3.eu-west-1.amazonaws.com:443"
    assert "do-not-read-me" not in repr(s3) and "do-not-read-me" not in repr(cfg.sections)
    assert cfg.get("repo2-s3-key-secret", "main") is None  # secrets are dropped as the file is read
    assert repo_storage(cfg, "main", 3).endpoint == "sftp://backup.example.com:22"
    assert repo_storage(cfg, "main", 5).endpoint == "https://10.0.0.5:9000"  # storage-host wins
    assert repo_storage(cfg, "main", 6).endpoint == "https://acme.blob.core.windows.net:443"
    assert repo_storage(cfg, "main", 7).endpoint == "https://gcs.local:4443"
    assert repo_storage(cfg, "other", 4).endpoint == "https://storage.googleapis.com:443"


@pytest.mark.parametrize("kind", ["s3", "gcs", "azure", "sftp"])
def test_a_closed_port_did_not_answer_connection_refused(kind):
    p = probe(RepoStorage(2, kind, "127.0.0.1", closed_port(), "bucket"), 2)
    assert not p.answered
    assert "refused" in p.detail.lower(), p.detail
    assert p.endpoint.endswith(f"127.0.0.1:{p.endpoint.rsplit(':', 1)[1]}")


@pytest.mark.parametrize("kind", ["s3", "gcs", "sftp"])
def test_a_server_that_accepts_and_never_answers_did_not_answer(kind):
    hole = Blackhole()
    hole.start()
    try:
        p = probe(RepoStorage(2, kind, "127.0.0.1", hole.port, "bucket"), 0.5)
    finally:
        hole.stop()
    assert not p.answered
    assert "accepted the connection but" in p.detail, p.detail
    assert hole.accepted == 1  # one attempt: no retry loop
    assert p.to_dict()["timeout"] == 0.5


def test_an_ssh_banner_answers_an_sftp_probe():
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = probe(RepoStorage(3, "sftp", "127.0.0.1", server.getsockname()[1]), 2)
    finally:
        t.join(5)
        server.close()
    assert p.answered and "SSH-2.0-OpenSSH_9.2p1" in p.detail


def test_a_repo_without_endpoint_did_not_answer_and_a_local_repo_is_not_probed():
    assert not probe(RepoStorage(2, "s3"), 1).answered
    with pytest.raises(ValueError, match="nothing to probe"):
        probe(RepoStorage(1, "posix"), 1)
