"""`estate check` names the connections of the estate's ``backups:`` (Velero, AWS Backup and its restore test,
S3 Object Lock) for the drills that use them, and tells a provider's default connection that is not defined
(its hook then runs with the worker's own credentials) from a named one that is missing (a misspelt id).

Real Airflow connection lookups (environment variables, as a deployment's secrets backend would hold them);
the sandbox's estate file with a Velero install and an AWS Backup restore test added.
"""

from __future__ import annotations

import json

import pytest

from drdrill.core.checks import Status

VELERO = """  velero:
    - name: prod-k8s
      conn_id: k8s_prod
      copies: [{cluster: main}]
    - name: platform-k8s
  aws_backup:"""
RESTORE_TEST = """      checks: [vault_lock, plan]
      restore_test:
        resource_arn: arn:aws:rds:us-east-1:123456789012:db:orders
        iam_role_arn: arn:aws:iam::123456789012:role/backup-restore
        conn_id: pg_restored"""


@pytest.fixture
def estate(tmp_path):
    from drdrill.core.estate import load_estate
    from drdrill.core.paths import DEFAULT_ESTATE

    text = DEFAULT_ESTATE.read_text()
    assert "\n  aws_backup:" in text and "      checks: [vault_lock, plan]" in text
    text = text.replace("  aws_backup:", VELERO, 1).replace("      checks: [vault_lock, plan]", RESTORE_TEST, 1)
    f = tmp_path / "estate.yaml"
    f.write_text(text)
    return load_estate(f)


def backups(ids):
    return [(conn, kind, where) for conn, kind, where in ids if where.startswith("backups.")]


def test_each_drill_checks_the_backup_connections_it_uses(estate):
    from drdrill.drills.estatecheck import connection_ids

    main = [estate.cluster("main")]
    assert backups(connection_ids(estate, main, "dr_daily_verification")) == [
        ("k8s_prod", "kubernetes", "backups.velero[prod-k8s]"),
        ("kubernetes_default", "kubernetes", "backups.velero[platform-k8s]"),
        ("aws_sandbox", "aws", "backups.aws_backup[production]"),
        ("pg_restored", "postgres", "backups.aws_backup[production].restore_test"),
    ]  # object_lock's aws_sandbox is the same connection: named once
    assert [w for _, _, w in backups(connection_ids(estate, main, "dr_monthly_velero_restore_test"))] == [
        "backups.velero[prod-k8s]", "backups.velero[platform-k8s]"]
    assert [w for _, _, w in backups(connection_ids(estate, main, "dr_monthly_aws_backup_restore_test"))] == [
        "backups.aws_backup[production]", "backups.aws_backup[production].restore_test"]
    assert backups(connection_ids(estate, main, "dr_monthly_restore_test")) == []
    # An install holding copies of other clusters only is not checked for these: prod-k8s holds main's.
    assert [w for _, _, w in backups(connection_ids(estate, [], "dr_daily_verification"))][:1] == [
        "backups.velero[platform-k8s]"]


def test_a_named_connection_that_is_missing_fails_with_its_fix(estate, monkeypatch):
    from drdrill.drills.estatecheck import check_connection, connection_ids

    monkeypatch.delenv("AIRFLOW_CONN_K8S_PROD", raising=False)
    ids = {w: (c, k, w) for c, k, w in connection_ids(estate, [estate.cluster("main")], "dr_daily_verification")}
    r = check_connection(*ids["backups.velero[prod-k8s]"])
    assert r.failed and "backups.velero[prod-k8s] names connection 'k8s_prod', which is not defined" in r.message
    assert "airflow connections add k8s_prod --conn-type kubernetes" in r.message
    monkeypatch.setenv("AIRFLOW_CONN_K8S_PROD", json.dumps({"conn_type": "kubernetes",
                                                             "extra": {"in_cluster": True}}))
    r = check_connection(*ids["backups.velero[prod-k8s]"])
    assert r.status is Status.PASS and "'k8s_prod' (kubernetes) is defined" in r.message
    r = check_connection(*ids["backups.aws_backup[production].restore_test"])
    assert r.failed and "'pg_restored', which is not defined" in r.message and "--conn-type postgres" in r.message


@pytest.mark.parametrize(("conn_id", "kind", "says"), [
    ("kubernetes_default", "kubernetes", "in-cluster service account or ~/.kube/config"),
    ("aws_default", "aws", "this worker's own credentials (instance or pod role"),
])
def test_a_provider_default_that_is_not_defined_is_reported_not_failed(monkeypatch, conn_id, kind, says):
    """The provider's hook runs without it (the worker's own credentials): the check says so, and does not
    stop the drill the way a missing named connection does."""
    from drdrill.drills.estatecheck import check_connection

    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    r = check_connection(conn_id, kind, "backups.x[y]")
    assert r.status is Status.SKIP and not r.failed
    assert f"names connection {conn_id!r}, which is not defined: " in r.message and says in r.message


SHOP = """
  - name: shop
    url: https://shop.example.com
    allowed_drills: [dr_weekly_pod_kill, dr_monthly_az_failure]
    probe: {alarm: {name: shop-5xx, conn_id: aws_cloudwatch}}
    kubernetes: {conn_id: k8s_shop, namespace: shop, selector: app=web, namespaces_allowed: [shop]}
    az_failure:
      engine: fis
      fis:
        conn_id: aws_fis
        template_name: shop-az-failure
        role_arn: arn:aws:iam::123456789012:role/fis-drdrill
        ecs_cluster: prod
        ecs_services: [shop-web]
        zones: [eu-west-1a, eu-west-1b]
        stop_alarm_arn: arn:aws:cloudwatch:eu-west-1:123456789012:alarm:shop-5xx
"""


def test_the_chaos_drills_check_the_connections_of_the_services_they_may_act_on(tmp_path, monkeypatch):
    from drdrill.core.estate import load_estate
    from drdrill.core.paths import DEFAULT_ESTATE
    from drdrill.drills.estatecheck import check_connection, connection_ids

    text = DEFAULT_ESTATE.read_text()
    assert "\nservices:\n" in text
    f = tmp_path / "estate.yaml"
    f.write_text(text.replace("\nservices:\n", "\nservices:" + SHOP, 1))
    estate = load_estate(f)

    def services(drill):
        return [(c, w) for c, _, w in connection_ids(estate, [], drill) if w.startswith("services[")]

    assert services("dr_weekly_pod_kill") == [("k8s_shop", "services[shop].kubernetes"),
                                              ("aws_cloudwatch", "services[shop].probe.alarm")]
    assert services("dr_monthly_az_failure") == [("aws_fis", "services[shop].az_failure.fis"),
                                                 ("aws_cloudwatch", "services[shop].probe.alarm")]
    assert services("dr_monthly_restore_test") == []
    assert [w for _, w in services(None)] == ["services[shop].kubernetes", "services[shop].az_failure.fis",
                                              "services[shop].probe.alarm"]
    monkeypatch.delenv("AIRFLOW_CONN_AWS_FIS", raising=False)
    r = check_connection("aws_fis", "aws", "services[shop].az_failure.fis")
    assert r.failed and "services[shop].az_failure.fis names connection 'aws_fis', which is not defined" in r.message
