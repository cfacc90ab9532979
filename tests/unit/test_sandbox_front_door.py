"""The sandbox's replicas and front door as the estate declares them: supervisord programs from
``services[].process.replicas``, HAProxy's config from the service's front door, each checked by the
real ``haproxy -c``; each estate mistake the sandbox cannot run is refused naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from drdrill.core.errors import DrillError
from drdrill.core.estate import parse_estate
from drdrill.core.paths import DEFAULT_ESTATE
from drdrill.sandbox import Sandbox
from drdrill.sandbox.haproxy import HAPROXY

needs_haproxy = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy not installed (make install)")


def _sandbox(tmp_path: Path, monkeypatch, change=None) -> Sandbox:
    """The sandbox of the sandbox estate (changed by ``change``) under ``tmp_path``; nothing is started."""
    monkeypatch.setenv("DRDRILL_SANDBOX_DIR", str(tmp_path))
    raw = yaml.safe_load(DEFAULT_ESTATE.read_text())
    if change:
        change(raw)
    return Sandbox(parse_estate(yaml.safe_dump(raw), DEFAULT_ESTATE))


def _web(raw: dict) -> dict:
    return next(s for s in raw["services"] if s["name"] == "web")


def test_replicas_are_the_services_process_replicas_one_per_zone(tmp_path, monkeypatch):
    sb = _sandbox(tmp_path, monkeypatch)
    assert sb.replicas() == [("service-1", "http://127.0.0.1:55610", 55610),
                             ("service-2", "http://127.0.0.1:55611", 55611),
                             ("service-3", "http://127.0.0.1:55612", 55612)]
    assert sb.services.zones() == {"service-1": "a", "service-2": "b", "service-3": "c"}
    conf = sb.services.supervisord_conf()
    assert re.findall(r"^\[program:(.+)\]$", conf, re.M) == ["service-1", "service-2", "service-3"]
    assert "--port 55612" in conf and conf.count("autorestart=true") == 3 and conf.count("startsecs=1") == 3
    assert sb.front_door() == sb.front_door("web") == "http://127.0.0.1:55600"
    assert {55600, 55610, 55611, 55612} <= set(sb._ports())


def test_program_names_and_ports_follow_the_estate(tmp_path, monkeypatch):
    def rename(raw):
        _web(raw)["process"]["replicas"][0].update(program="web-a", url="http://127.0.0.1:55620")
        raw["clusters"][0]["failover"]["service"]["urls"][0] = "http://127.0.0.1:55620"

    sb = _sandbox(tmp_path, monkeypatch, rename)
    assert sb.replicas()[0] == ("web-a", "http://127.0.0.1:55620", 55620)
    assert "server web-a 127.0.0.1:55620" in sb.haproxy.render()


def test_without_services_the_replicas_are_the_failover_urls_and_there_is_no_front_door(tmp_path, monkeypatch):
    sb = _sandbox(tmp_path, monkeypatch, lambda raw: raw.pop("services"))
    assert [n for n, _u, _p in sb.replicas()] == ["service-1", "service-2", "service-3"]
    assert sb.haproxy.backends == [] and sb.haproxy.problems() == []
    with pytest.raises(DrillError, match="no front door"):
        sb.front_door()


def test_a_service_elsewhere_is_not_run_by_the_sandbox(tmp_path, monkeypatch):
    def elsewhere(raw):
        _web(raw)["process"]["supervisor_conf"] = "/etc/supervisor/supervisord.conf"
        raw["clusters"][0]["failover"]["service"]["urls"] = ["http://127.0.0.1:55610"]

    sb = _sandbox(tmp_path, monkeypatch, elsewhere)
    assert sb.haproxy.backends == [] and [n for n, _u, _p in sb.replicas()] == ["service-1"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: _web(raw)["process"]["replicas"][1].update(url="http://10.0.0.7:55611"),
     r"services\[web\]\.process\.replicas\[service-2\]\.url must be http://127\.0\.0\.1:PORT"),
    (lambda raw: _web(raw).update(url="https://127.0.0.1:55600"), r"services\[web\]\.url must be http://127"),
    (lambda raw: raw["clusters"][0]["failover"]["service"]["urls"].append("http://127.0.0.1:55619"),
     r"failover\.service\.urls \['http://127\.0\.0\.1:55619'\] are neither replicas the sandbox runs"),
    (lambda raw: _web(raw)["process"]["replicas"][2].update(url="http://127.0.0.1:55611"),
     r"replica service-3 \(http://127\.0\.0\.1:55611\) clashes with replica service-2"),
])
def test_what_the_sandbox_cannot_run_is_refused_naming_the_field(tmp_path, monkeypatch, change, message):
    with pytest.raises(DrillError, match=message):
        sb = _sandbox(tmp_path, monkeypatch, change)
        sb.replicas()


def test_failover_urls_may_name_the_front_door(tmp_path, monkeypatch):
    sb = _sandbox(tmp_path, monkeypatch, lambda raw: raw["clusters"][0]["failover"]["service"].update(
        urls=["http://127.0.0.1:55600"]))
    assert len(sb.replicas()) == 3


@needs_haproxy
def test_config_has_the_front_door_checks_and_retries_and_haproxy_accepts_it(tmp_path, monkeypatch):
    sb = _sandbox(tmp_path, monkeypatch)
    fd = sb.haproxy
    cfg = fd.render()
    assert "bind 127.0.0.1:55600" in cfg and "option httpchk GET /health" in cfg
    assert "http-check expect rstatus ^(200|503)$" in cfg  # a degraded database does not empty the backend
    assert re.search(r"default-server check inter 500ms .*fall 2 rise 1", cfg)
    assert "option redispatch 1" in cfg and "retries 3" in cfg
    assert "retry-on conn-failure empty-response junk-response\n" in cfg  # never response-timeout (docstring)
    assert "option http-buffer-request" in cfg  # a POST the killed replica had not read is sent again
    assert [ln.split()[1] for ln in cfg.splitlines() if ln.strip().startswith("server ")] == [
        "service-1", "service-2", "service-3"]
    fd.install_config(cfg)
    assert fd.config.read_text() == cfg

    bare = fd.render(retries=False)
    assert "retries 0" in bare and "no option redispatch" in bare and "retry-on none" in bare
    assert "retry-on conn" not in bare and "option redispatch 1" not in bare
    fd.install_config(bare)
    assert fd.config.read_text() == bare


@needs_haproxy
def test_a_config_haproxy_refuses_fails_with_its_own_message_and_changes_nothing(tmp_path, monkeypatch):
    fd = _sandbox(tmp_path, monkeypatch).haproxy
    good = fd.render()
    fd.install_config(good)
    with pytest.raises(DrillError, match=r"haproxy refuses the config.*unknown keyword 'balanse'"):
        fd.install_config(good.replace("balance roundrobin", "balanse roundrobin"))
    assert fd.config.read_text() == good


@needs_haproxy
def test_a_missing_haproxy_is_named_with_its_package(tmp_path, monkeypatch):
    import drdrill.sandbox.haproxy as mod

    monkeypatch.setattr(mod, "HAPROXY", str(tmp_path / "no-haproxy"))
    with pytest.raises(DrillError, match=r"no-haproxy is missing; run `make install` \(apt-get install -y haproxy\)"):
        _sandbox(tmp_path, monkeypatch).haproxy.start()


@needs_haproxy
def test_a_front_door_port_taken_by_another_process_is_named(tmp_path, monkeypatch):
    import socket

    sb = _sandbox(tmp_path, monkeypatch, lambda raw: _web(raw).update(url="http://127.0.0.1:55698"))
    with socket.socket() as other:
        other.bind(("127.0.0.1", 55698))
        other.listen()
        with pytest.raises(DrillError, match=r"port\(s\) \[55698\] \(the front door in .*sandbox\.yaml\) in use"):
            sb.haproxy.start()
    assert sb.haproxy.pid() is None and not sb.haproxy.config.exists()
