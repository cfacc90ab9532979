"""What Airflow's ProvidersManager reads about drdrill (the ``apache_airflow_provider`` entry point).

Shaped like the ``get_provider_info.py`` of Airflow's own providers. Airflow calls it at startup
in every component, so it is a plain dict: nothing here imports a hook, an operator or Airflow.
Hooks are imported lazily, by connection type, when Airflow first needs one; the ``operators``,
``sensors`` and ``triggers`` lists are documentation (``airflow providers get drdrill --full``)
and are never imported by Airflow.

The connection form of a ``pgbackrest`` connection is declared here, not on the hook: Airflow 3.3
builds the form from ``ui-field-behaviour`` (standard fields: hidden, relabelled, placeholders)
and ``conn-fields`` (extra fields, stored under their own name in the connection's extra) in
provider info, without importing the hook; a hook's ``get_ui_field_behaviour()`` is deprecated
since Airflow 3.2 and ignored when provider info declares the form.
"""

from __future__ import annotations

from typing import Any

from drdrill import __version__

PGBACKREST = "pgBackRest"
POSTGRES = "PostgreSQL"
ROUTE53 = "Amazon Route 53"
DATA_QUALITY = "Great Expectations"
DEADLINES = "Recovery deadlines"
ESTATE = "Estate check"
FIS = "AWS Fault Injection Service"
KUBERNETES = "Kubernetes"
CHAOS = "Chaos drills"
VELERO = "Velero"
AWS_BACKUP = "AWS Backup"
OBJECT_LOCK = "Amazon S3 Object Lock"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "drdrill",
        "name": "drdrill",
        "description": "Disaster-recovery drills for PostgreSQL estates: pgBackRest verification and "
                       "restore tests, data-quality checks on restored copies, failover with Route 53 "
                       "switch-over, measured RTO and RPO, and a journal of every run.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": PGBACKREST, "external-doc-url": "https://pgbackrest.org/", "tags": ["software"]},
            {"integration-name": POSTGRES, "external-doc-url": "https://www.postgresql.org/", "tags": ["software"]},
            {"integration-name": ROUTE53, "external-doc-url": "https://aws.amazon.com/route53/", "tags": ["aws"]},
            {"integration-name": DATA_QUALITY, "external-doc-url": "https://docs.greatexpectations.io/",
             "tags": ["software"]},
            {"integration-name": ESTATE, "tags": ["software"],
             "external-doc-url": "https://www.postgresql.org/docs/15/predefined-roles.html"},
            {"integration-name": FIS, "external-doc-url": "https://aws.amazon.com/fis/", "tags": ["aws"]},
            {"integration-name": KUBERNETES, "external-doc-url": "https://kubernetes.io/", "tags": ["software"]},
            {"integration-name": CHAOS, "tags": ["software"],
             "external-doc-url": "https://principlesofchaos.org/"},
            {"integration-name": VELERO, "external-doc-url": "https://velero.io/", "tags": ["software"]},
            {"integration-name": AWS_BACKUP, "external-doc-url": "https://aws.amazon.com/backup/", "tags": ["aws"]},
            {"integration-name": OBJECT_LOCK, "tags": ["aws"],
             "external-doc-url": "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html"},
            {"integration-name": DEADLINES, "tags": ["software"],
             "external-doc-url": "https://airflow.apache.org/docs/apache-airflow/stable/authoring-and-scheduling/"
                                 "deferring.html"},
        ],
        "operators": [
            {"integration-name": PGBACKREST, "python-modules": ["drdrill.operators.pgbackrest",
                                                                 "drdrill.operators.restore"]},
            {"integration-name": DATA_QUALITY, "python-modules": ["drdrill.operators.dataquality"]},
            {"integration-name": POSTGRES, "python-modules": ["drdrill.operators.postgres"]},
            {"integration-name": ROUTE53, "python-modules": ["drdrill.operators.route53"]},
            {"integration-name": DEADLINES, "python-modules": ["drdrill.operators.deadline"]},
            {"integration-name": ESTATE, "python-modules": ["drdrill.operators.estate"]},
            {"integration-name": FIS, "python-modules": ["drdrill.operators.fis"]},
            {"integration-name": KUBERNETES, "python-modules": ["drdrill.operators.kubernetes"]},
            {"integration-name": CHAOS, "python-modules": ["drdrill.operators.chaos"]},
            {"integration-name": VELERO, "python-modules": ["drdrill.operators.velero"]},
            {"integration-name": AWS_BACKUP, "python-modules": ["drdrill.operators.aws_backup"]},
        ],
        "sensors": [
            {"integration-name": POSTGRES, "python-modules": ["drdrill.sensors.postgres"]},
        ],
        "hooks": [
            {"integration-name": PGBACKREST, "python-modules": ["drdrill.hooks.pgbackrest"]},
            {"integration-name": POSTGRES, "python-modules": ["drdrill.hooks.postgres"]},
            {"integration-name": ROUTE53, "python-modules": ["drdrill.hooks.route53"]},
            {"integration-name": FIS, "python-modules": ["drdrill.hooks.fis", "drdrill.hooks.ecs",
                                                         "drdrill.hooks.cloudwatch"]},
            {"integration-name": KUBERNETES, "python-modules": ["drdrill.hooks.kubernetes"]},
            {"integration-name": VELERO, "python-modules": ["drdrill.hooks.velero"]},
            {"integration-name": AWS_BACKUP, "python-modules": ["drdrill.hooks.aws_backup"]},
            {"integration-name": OBJECT_LOCK, "python-modules": ["drdrill.hooks.s3_lock"]},
        ],
        "triggers": [
            {"integration-name": POSTGRES, "python-modules": ["drdrill.triggers.postgres"]},
            {"integration-name": ROUTE53, "python-modules": ["drdrill.triggers.route53"]},
            {"integration-name": DEADLINES, "python-modules": ["drdrill.triggers.deadline"]},
            {"integration-name": FIS, "python-modules": ["drdrill.triggers.fis"]},
            {"integration-name": KUBERNETES, "python-modules": ["drdrill.triggers.kubernetes"]},
            {"integration-name": CHAOS, "python-modules": ["drdrill.triggers.chaos"]},
            {"integration-name": VELERO, "python-modules": ["drdrill.triggers.velero"]},
        ],
        # PostgresNodeHook and Route53Hook use the postgres and aws connection types of their
        # providers; only pgBackRest has a connection type of its own.
        "connection-types": [
            {
                "hook-class-name": "drdrill.hooks.pgbackrest.PgBackRestHook",
                "hook-name": "pgBackRest",
                "connection-type": "pgbackrest",
                "ui-field-behaviour": {
                    # pgBackRest runs on the worker (the local runner), or on the host of the SSH
                    # connection in ssh_conn_id; its secrets stay in pgbackrest.conf, never in Airflow.
                    "hidden-fields": ["schema", "port", "password"],
                    "relabeling": {"login": "Run as (OS user)",
                                   "host": "Host (empty: this worker, or the SSH connection's host)"},
                    "placeholders": {"login": "postgres"},
                },
                "conn-fields": {
                    "stanza": {
                        "label": "Stanza",
                        "description": "The pgBackRest stanza the drills act on (--stanza).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "config": {
                        "label": "pgbackrest.conf",
                        "description": "Path of pgbackrest.conf where the command runs (it holds the "
                                       "repo secrets); empty: pgBackRest's default.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ssh_conn_id": {
                        "label": "SSH connection",
                        "description": "Run pgBackRest (and the scratch server) on the host of this Airflow SSH "
                                       "connection instead of this worker.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "process_max": {
                        "label": "Parallel processes",
                        "description": "pgBackRest --process-max for restores.",
                        "schema": {"type": ["integer", "null"], "default": 2, "minimum": 1},
                    },
                },
            },
        ],
    }
