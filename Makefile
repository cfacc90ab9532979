# drdrill: disaster-recovery drills that run themselves.
# `make demo` runs every drill on the local sandbox; `make test` runs the test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# `airflow standalone` starts its components as `airflow ...` from PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)/include
export AIRFLOW_HOME ?= $(CURDIR)/airflow-home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export GX_ANALYTICS_ENABLED := False

.PHONY: help install apt-deps demo test lint sandbox-up sandbox-down sandbox-status airflow bench constraints clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*## /\t/'

apt-deps:  ## Debian packages: PostgreSQL 15, pgBackRest, redis-server (the Celery test's broker), docker-compose (to validate docker-compose.yaml), openssh-server (the SSH runner's tests), haproxy (the sandbox's front door), chromium (the DR drills page's browser test)
	@if ! command -v pgbackrest >/dev/null || ! command -v docker-compose >/dev/null || ! command -v redis-server >/dev/null || [ ! -x /usr/lib/postgresql/15/bin/postgres ] || [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/sbin/haproxy ] || [ ! -x /usr/bin/chromium ]; then \
	  echo "installing pgbackrest, postgresql-15, redis-server, docker-compose, openssh-server, haproxy and chromium (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest postgresql-15 redis-server docker-compose openssh-server haproxy chromium >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing Python packages into $(VENV) (requirements.txt, pinned by constraints.txt)"
	@$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -m pip install -q -r requirements.txt -c constraints.txt 2>&1 | grep -v "^WARNING: Location" || true
	@# importing great_expectations logs ~200 INFO lines of its own: keep them off the console
	@$(PY) -c "import airflow, great_expectations, moto, supervisor" >$(VENV)/import-check.log 2>&1 \
	  || (tail -20 $(VENV)/import-check.log; exit 1)
	@touch $@

install: apt-deps $(VENV)/.installed  ## everything the drills and tests need

$(AIRFLOW_HOME)/airflow.db: | $(VENV)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	@$(VENV)/bin/airflow db migrate >$(AIRFLOW_HOME)/migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/migrate.log; exit 1)

sandbox-up: install  ## start the local DR estate (idempotent)
	@$(PY) -m drdrill.sandbox up

sandbox-down: ## stop every sandbox server by PID and remove it (journals are kept)
	@if [ -x $(PY) ]; then $(PY) -m drdrill.sandbox down; fi

sandbox-status: ## servers, ports, PIDs and backups per repo
	@$(PY) -m drdrill.sandbox status

demo: install sandbox-up $(AIRFLOW_HOME)/airflow.db  ## run every drill on the sandbox through Airflow and show the results
	@$(PY) scripts/demo.py

test: install  ## lint, then the whole test suite, end-to-end drills included
	@$(VENV)/bin/ruff check dags include tests bench scripts plugins
	@$(PY) -m pytest -n 2 --dist loadscope

lint: install  ## ruff (with Airflow's AIR rules)
	@$(VENV)/bin/ruff check dags include tests bench scripts plugins

airflow: install sandbox-up $(AIRFLOW_HOME)/airflow.db  ## Airflow UI on http://localhost:8080 (standalone) over the sandbox
	@echo "admin password: $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	@echo "DR drills page: http://localhost:8080/plugin/dr-drills (nav entry \"DR drills\"; each run's \"DR drill evidence\" tab)"
	@# The drills' pools: a real scheduler never schedules a task whose pool does not exist.
	@$(VENV)/bin/airflow pools set dr_drills 4 "drdrill: all drill tasks (at most 4 at once)" >/dev/null
	@$(VENV)/bin/airflow pools set dr_destructive 1 "drdrill: steps that act on servers or DNS, one at a time" >/dev/null
	@# The aws_sandbox connection (moto's S3 and Route53 over TLS, the sandbox's CA by absolute path).
	@eval "$$($(PY) -m drdrill.sandbox env)" && $(VENV)/bin/airflow standalone

bench: install sandbox-up  ## restore overhead, DAG parse time, memory; then failover RTO: bare, drill in-process, drill under a real scheduler (kills the primary); then chaos: kill -9 of a replica, bare vs the pod-kill drill, errors per kill at 20 and 200 requests/s; then region failover: region a killed, pg3 from repo2, bare vs the region drill, cold and warm; then the backup estate: AWS Backup and Object Lock checks on moto, the scorecard's journal search at 10/100/1000 journals; then the evidence: the DR dashboard's model and the compliance report over 1,000 journals
	@$(PY) bench/restore_overhead.py --runs 3
	@$(PY) bench/failover_rto.py
	@$(PY) bench/chaos_kill.py --kills 3
	@$(PY) bench/region_failover.py --runs 1
	@$(PY) bench/backup_estate.py --runs 3
	@$(PY) bench/evidence.py --runs 5
	@$(PY) bench/ui_page.py --runs 5

constraints:  ## regenerate constraints.txt from the current venv
	@$(PY) -m pip freeze --exclude-editable > constraints.txt

clean: sandbox-down  ## remove the sandbox, the Airflow home and the venv
	rm -rf $(AIRFLOW_HOME) $(VENV)
