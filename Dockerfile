# drdrill image: Airflow 3.3.2 plus every program the drills run on a worker (runner.kind: local):
# pgBackRest, the PostgreSQL 15 server binaries a restore test's scratch server needs (postgres, pg_ctl,
# pg_rewind, pg_controldata from postgresql-15), the client, procps; the list is
# include/drdrill/core/commands.py, checked below at build time and by tests/unit/test_dockerfile.py.
# Built by docker-compose.yaml (`docker compose build`); see docs/docker-compose.md.
FROM apache/airflow:3.3.2-python3.11

USER root
# Everything comes from the base image's Debian release when it has PostgreSQL 15 (bookworm does);
# a release without it gets the PGDG apt repository first, through postgresql-common's own script.
# The server package must not create a cluster of its own: the image runs scratch copies only.
# openssh-client: ssh-keyscan for the SSH connections' host keys (the SSH runner itself talks SSH through
# the ssh provider's SSHHook; with it, the programs above run on the database hosts instead).
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/drdrill.conf; \
    apt-get update; \
    if ! apt-cache show postgresql-15 >/dev/null 2>&1; then \
        apt-get install -y --no-install-recommends ca-certificates postgresql-common; \
        /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
    fi; \
    apt-get install -y --no-install-recommends pgbackrest postgresql-15 postgresql-client-15 procps \
        openssh-client; \
    apt-get autoremove -y; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*

# Fail the build, naming the package, if a program the drills run is missing.
COPY include/drdrill/core/commands.py /opt/drdrill/commands.py
RUN python /opt/drdrill/commands.py /usr/lib/postgresql/15/bin && pgbackrest version

# Commands run as the worker's own user: the image's `airflow` (UID 50000, group 0), or any UID with
# group 0 (`user:` in docker-compose.yaml; e.g. the postgres UID of the hosts that share a posix repo).
# PostgreSQL runs as any user but root, and a scratch server belongs to whoever restored it, so the
# estate's runner.run_as stays unset for a container worker. pgBackRest's log, lock and spool
# directories and the scratch root are writable by group 0.
RUN set -eux; \
    for d in /var/log/pgbackrest /var/lib/pgbackrest /var/spool/pgbackrest /tmp/pgbackrest \
             /var/lib/drdrill/scratch; do \
        mkdir -p "$d"; chown -R airflow:0 "$d"; chmod 2775 "$d"; \
    done

USER airflow
# requirements.txt pins apache-airflow==3.3.2, so pip cannot swap out the image's Airflow.
# apache-airflow-providers-celery ships with the base image but is not in our constraints.txt;
# naming it here makes pip check that the version already installed still fits beside our pins.
COPY --chown=airflow:0 requirements.txt constraints.txt /tmp/drdrill/
RUN pip install --no-cache-dir \
        -r /tmp/drdrill/requirements.txt \
        -c /tmp/drdrill/constraints.txt \
        apache-airflow-providers-celery
