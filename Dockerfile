# drdrill image: Airflow 3.3.2 plus the PostgreSQL 15 client tools and pgBackRest the drills call.
# Built by docker-compose.yaml (`docker compose build`); see docs/docker-compose.md.
FROM apache/airflow:3.3.2-python3.11

USER root
# pgBackRest and postgresql-client-15 come from the base image's Debian release when it has them
# (bookworm does). A release without PostgreSQL 15 gets the PGDG apt repository added first by
# postgresql-common's own script.
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    if ! apt-cache show postgresql-client-15 >/dev/null 2>&1; then \
        apt-get install -y --no-install-recommends ca-certificates postgresql-common; \
        /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
    fi; \
    apt-get install -y --no-install-recommends pgbackrest postgresql-client-15; \
    pgbackrest version; \
    /usr/lib/postgresql/15/bin/psql --version; \
    apt-get autoremove -y; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*

USER airflow
# requirements.txt pins apache-airflow==3.3.2, so pip cannot swap out the image's Airflow.
# apache-airflow-providers-celery ships with the base image but is not in our constraints.txt;
# naming it here makes pip check that the version already installed still fits beside our pins.
COPY --chown=airflow:0 requirements.txt constraints.txt /tmp/drdrill/
RUN pip install --no-cache-dir \
        -r /tmp/drdrill/requirements.txt \
        -c /tmp/drdrill/constraints.txt \
        apache-airflow-providers-celery
