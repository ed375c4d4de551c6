# socklab: `make up` runs the lab, `make test` runs the tests. `make help` lists the rest.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# make up LAB=alice starts a lab of its own beside the others (make down|shell|ps|logs
# LAB=alice act on it): Compose project and network socklab-alice, its own uploads
# volume, the same host names inside. Without LAB: project and network socklab.
LAB          ?=
PROJECT      ?= $(if $(LAB),socklab-$(LAB),socklab)
COMPOSE_FILE := compose/lab.yml
PYTHON       ?= python3
HOSTPY       := PYTHONPATH=services $(PYTHON)
VENV         := .venv
VENV_STAMP   := $(VENV)/.installed-$(shell sha256sum pyproject.toml 2>/dev/null | cut -c1-12)
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k ftp -x'
PYTEST_ARGS  ?=
# make up PUBLISH=1 also publishes the servers' ports on 127.0.0.1 (compose/publish.yml).
PUBLISH      ?=
# make vms starts three test VMs (make vms N=5: five); they form a Docker Swarm, one
# manager for the clients and workers for the servers. make provision INVENTORY=path
# provisions real ones.
N            ?= 3
VMS          ?= $(N)
INVENTORY    ?=
# Extra ansible-playbook arguments, e.g. make provision ANSIBLE_ARGS='--limit vm-1 --diff'
ANSIBLE_ARGS ?=
# make provision LABS=alice,bob: on a swarm, one lab stack per learner (socklab-alice, ...)
LABS         ?=
# make bench QUICK=1: a few cells, small N, under 2 minutes (make test runs it as a smoke check)
QUICK        ?=
# Extra pytest arguments of make test-ansible, e.g. ANSIBLE_TEST_ARGS=-x
ANSIBLE_TEST_ARGS ?=
# make grade VARIANT=select SUBMISSION=path/to/server.py [OUT=dir] [KEEP=1]: a learner's
# own server in a lab of its own, every check of the variant, results in OUT.
VARIANT      ?=
SUBMISSION   ?=
OUT          ?=
KEEP         ?=
# make grade-clean RUN=<run id>: that kept grading lab only (without RUN: every one)
RUN          ?=
# make grade|grade-class CHECKS=course.toml: which checks count and their points
CHECKS       ?=
# make grade-class VARIANT=select SUBMISSIONS=dir [OUT=dir] [JOBS=n] [CHECKS=file] [FORCE=1]:
# every learner's submission of dir, JOBS at once; OUT/class.csv and OUT/index.html
SUBMISSIONS  ?=
JOBS         ?=
FORCE        ?=
# make grade-class ... SWARM=ssh://labadmin@<manager>: the gradings spread over the swarm's
# workers; SSH_CONFIG: how to reach them (default: .vms/ssh_config when make vms wrote it)
SWARM        ?=
SSH_CONFIG   ?= $(if $(SWARM),$(wildcard .vms/ssh_config))

# Compose v2 (docker compose) if present, else v1 (docker-compose); COMPOSE=... (on the
# command line or in the environment) picks one by hand.
ifeq ($(origin COMPOSE),undefined)
COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
             elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
endif
# compose/lab.yml names the lab's network from SOCKLAB_NETWORK: one network per lab.
DC = SOCKLAB_NETWORK=$(PROJECT) $(COMPOSE) -p $(PROJECT) -f $(COMPOSE_FILE) $(if $(PUBLISH),-f compose/publish.yml)

# Builds what is missing (tags are hashes of the inputs) and exports SOCKLAB_IMAGE.
# (The assignment, unlike a bare eval "$(...)", fails when the build fails.)
WITH_IMAGE = image_env="$$($(HOSTPY) -m socklab.host.build images)"; eval "$$image_env"; export SOCKLAB_IMAGE;

.PHONY: help up down shell ps logs watch test test-suite lint unit images clean check-docker check-compose check-lab
.PHONY: vms vms-down provision test-ansible bench grade grade-class grade-clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  LAB=name with up, down, shell, ps, logs: a lab of its own beside the others"

check-docker:
	@command -v docker >/dev/null || { echo "socklab: the docker command is missing: install Docker Engine (Debian: apt-get install docker.io)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "socklab: the Docker engine is not running or not reachable (docker info failed): start it, e.g. systemctl start docker" >&2; exit 1; }

check-compose: check-docker
	@[ -n "$(COMPOSE)" ] || { echo "socklab: no Compose tool: install 'docker compose' (v2) or docker-compose (v1, Debian: apt-get install docker-compose)" >&2; exit 1; }

# A bad LAB name, or PUBLISH=1 with LAB (every lab would want the same host ports),
# stops here, before anything starts. (Passed in the environment: no shell quoting.)
check-lab: export SOCKLAB_CHECK_LAB := $(LAB)
check-lab:
	@$(HOSTPY) -m socklab.host.hostctl check-lab --lab="$$SOCKLAB_CHECK_LAB" $(if $(PUBLISH),--publish)

images: check-docker ## build the base and lab images if missing
	@$(HOSTPY) -m socklab.host.build images >/dev/null

up: check-lab check-compose ## build what is missing, start the lab, wait for health, print the lab map
	@$(WITH_IMAGE) \
	echo "socklab: starting the lab $(PROJECT) with $$SOCKLAB_IMAGE ($(COMPOSE))" >&2; \
	$(DC) up -d --remove-orphans; \
	$(HOSTPY) -m socklab.host.hostctl wait --project $(PROJECT); \
	echo; $(HOSTPY) -m socklab.host.hostctl map --project $(PROJECT)

down: check-lab check-compose ## stop and remove the lab (uploads are kept in their volume)
	$(DC) down --remove-orphans

shell: check-lab check-compose ## a shell on client-1
	$(DC) exec client-1 bash

ps: check-lab check-compose ## the lab's containers and the lab map
	@$(HOSTPY) -m socklab.host.hostctl map --project $(PROJECT)

logs: check-lab check-compose ## follow the servers' logs (one line per connection event)
	$(DC) logs --follow --tail 50

watch: check-lab check-docker ## the kernel's side of every host, live: [LAB=name | RUN=<grade run id>] [WEB=1 [WATCH_PORT=8765]] [ONCE=1 [FORMAT=json]]
	@$(HOSTPY) -m socklab.watch $(if $(LAB),--lab $(LAB)) $(if $(RUN),--grade $(RUN)) $(if $(WEB),--web) \
	  $(if $(WATCH_PORT),--port $(WATCH_PORT)) $(if $(ONCE),--once) $(if $(FORMAT),--format $(FORMAT))

$(VENV_STAMP): pyproject.toml
	@echo "socklab: creating the test environment in $(VENV)" >&2
	@rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@

lint: $(VENV_STAMP) ## ruff over the package and the tests
	$(VENV)/bin/ruff check services tests

unit: $(VENV_STAMP) ## the unit tests only (no Docker)
	$(VENV)/bin/pytest -n auto tests/unit $(PYTEST_ARGS)

test: check-docker $(VENV_STAMP) ## everything: lint, Ansible tests, unit and integration tests, then bench QUICK=1; the time of each part at the end
	@# The benchmark's smoke check: it must run and write its results; no figure is asserted.
	@$(VENV)/bin/python tests/parts.py "lint=$(MAKE) --no-print-directory lint" \
	  "ansible=$(MAKE) --no-print-directory test-ansible" \
	  "suite=$(MAKE) --no-print-directory test-suite" \
	  "bench smoke=$(MAKE) --no-print-directory bench QUICK=1"

test-suite: check-docker $(VENV_STAMP) ## the unit and integration tests (make test's main part)
	@$(WITH_IMAGE) \
	run="$$(date +%Y%m%d%H%M%S)-$$$$"; \
	trap 'PYTHONPATH=tests $(VENV)/bin/python -m integration.harness sweep "$$run"' EXIT INT TERM; \
	echo "socklab: test run $$run with $$SOCKLAB_IMAGE" >&2; \
	SOCKLAB_TEST_RUN="$$run" PYTHONPATH=services:tests $(VENV)/bin/pytest -n auto --dist loadgroup $(PYTEST_ARGS)

bench: check-docker $(VENV_STAMP) ## every variant vs references across the network: results/bench-<time>/ (QUICK=1: smoke check)
	@$(WITH_IMAGE) \
	run="$$(date -u +%Y%m%d-%H%M%S)-$$$$"; \
	trap 'PYTHONPATH=services $(VENV)/bin/python -m socklab.host.bench sweep "$$run" 2>/dev/null' EXIT INT TERM; \
	echo "socklab: bench run $$run with $$SOCKLAB_IMAGE$(if $(QUICK), (QUICK))" >&2; \
	PYTHONPATH=services $(VENV)/bin/python -m socklab.host.bench run --run-id "$$run" \
	  --image "$$SOCKLAB_IMAGE" --out results $(if $(QUICK),--quick)

# Exit status of the command: 0 all scored checks passed, 1 some did not, 2 no grading.
# (Values passed in the environment: a path with spaces needs no quoting.)
grade: export SOCKLAB_GRADE_VARIANT := $(VARIANT)
grade: export SOCKLAB_GRADE_SUBMISSION := $(SUBMISSION)
grade: export SOCKLAB_GRADE_OUT := $(OUT)
grade: export SOCKLAB_GRADE_CHECKS := $(CHECKS)
grade: check-docker $(VENV_STAMP) ## grade a server: VARIANT=select SUBMISSION=file|dir|reference [OUT=dir] [KEEP=1]
	@[ -n "$$SOCKLAB_GRADE_VARIANT" ] && [ -n "$$SOCKLAB_GRADE_SUBMISSION" ] || { echo "socklab: usage: make grade VARIANT=select SUBMISSION=path/to/server.py [OUT=dir] [KEEP=1]" >&2; exit 2; }
	@$(WITH_IMAGE) \
	PYTHONPATH=services $(VENV)/bin/python -m socklab.host.grade run \
	  --variant "$$SOCKLAB_GRADE_VARIANT" --submission "$$SOCKLAB_GRADE_SUBMISSION" \
	  $${SOCKLAB_GRADE_OUT:+--out "$$SOCKLAB_GRADE_OUT"} $(if $(KEEP),--keep) \
	  $${SOCKLAB_GRADE_CHECKS:+--checks "$$SOCKLAB_GRADE_CHECKS"}

grade-class: export SOCKLAB_GRADE_VARIANT := $(VARIANT)
grade-class: export SOCKLAB_GRADE_SUBMISSIONS := $(SUBMISSIONS)
grade-class: export SOCKLAB_GRADE_OUT := $(OUT)
grade-class: export SOCKLAB_GRADE_CHECKS := $(CHECKS)
grade-class: export SOCKLAB_GRADE_JOBS := $(JOBS)
grade-class: export SOCKLAB_GRADE_SWARM := $(SWARM)
grade-class: export SOCKLAB_GRADE_SSH_CONFIG := $(SSH_CONFIG)
grade-class: check-docker $(VENV_STAMP) ## grade a class: VARIANT=select SUBMISSIONS=dir [OUT=dir] [JOBS=n] [CHECKS=file] [FORCE=1] [SWARM=ssh://...]
	@[ -n "$$SOCKLAB_GRADE_VARIANT" ] && [ -n "$$SOCKLAB_GRADE_SUBMISSIONS" ] || { echo "socklab: usage: make grade-class VARIANT=select SUBMISSIONS=dir [OUT=dir] [JOBS=n] [CHECKS=file] [FORCE=1] [SWARM=ssh://user@manager]" >&2; exit 2; }
	@$(WITH_IMAGE) \
	PYTHONPATH=services $(VENV)/bin/python -m socklab.host.grade class \
	  --variant "$$SOCKLAB_GRADE_VARIANT" --submissions "$$SOCKLAB_GRADE_SUBMISSIONS" \
	  $${SOCKLAB_GRADE_OUT:+--out "$$SOCKLAB_GRADE_OUT"} $(if $(FORCE),--force) \
	  $${SOCKLAB_GRADE_JOBS:+--jobs "$$SOCKLAB_GRADE_JOBS"} \
	  $${SOCKLAB_GRADE_CHECKS:+--checks "$$SOCKLAB_GRADE_CHECKS"} \
	  $${SOCKLAB_GRADE_SWARM:+--swarm "$$SOCKLAB_GRADE_SWARM"} \
	  $${SOCKLAB_GRADE_SSH_CONFIG:+--ssh-config "$$SOCKLAB_GRADE_SSH_CONFIG"}

grade-clean: check-docker $(VENV_STAMP) ## remove grading labs left running (KEEP=1): all, or RUN=<run id>
	@PYTHONPATH=services $(VENV)/bin/python -m socklab.host.grade sweep $(RUN)

vms: check-docker ## start the local test VMs (N=3): systemd Debian containers with sshd, no Docker
	@$(HOSTPY) -m socklab.host.vms up --count $(VMS) >/dev/null

vms-down: check-docker ## remove the test VMs, their volumes and their network
	@$(HOSTPY) -m socklab.host.vms down

provision: export SOCKLAB_LABS := $(LABS)
provision: $(VENV_STAMP) ## ansible/site.yml against INVENTORY=path, or the test VMs (started if needed)
	@for lab in $${SOCKLAB_LABS//,/ }; do $(HOSTPY) -m socklab.host.hostctl check-lab --lab="$$lab"; done; \
	inventory="$(INVENTORY)"; \
	if [ -z "$$inventory" ]; then \
	  $(HOSTPY) -m socklab.host.vms up --count $(VMS) >/dev/null; inventory=.vms/inventory.ini; \
	fi; \
	[ -e "$$inventory" ] || { echo "socklab: no inventory $$inventory" >&2; exit 1; }; \
	inventory="$$(realpath "$$inventory")"; \
	echo "socklab: provisioning the hosts of $$inventory" >&2; \
	cd ansible && ../$(VENV)/bin/ansible-playbook -i "$$inventory" site.yml \
	  $(if $(LABS),-e "socklab_labs=$$SOCKLAB_LABS") $(ANSIBLE_ARGS)

test-ansible: check-docker $(VENV_STAMP) ## ansible-lint, then site.yml on fresh test VMs: converge, idempotence, verify
	@run="$$(date +%Y%m%d%H%M%S)-$$$$"; \
	trap 'PYTHONPATH=tests $(VENV)/bin/python -m integration.harness sweep "$$run"' EXIT INT TERM; \
	echo "socklab: Ansible test run $$run (test VMs socklab-vmt-$$run-N)" >&2; \
	SOCKLAB_TEST_RUN="$$run" SOCKLAB_ANSIBLE_TESTS=1 PYTHONPATH=services:tests \
	  $(VENV)/bin/pytest tests/ansible $(ANSIBLE_TEST_ARGS)

clean: ## remove everything the project created: labs, test leftovers, images, venv
	-@if [ -n "$(COMPOSE)" ] && docker info >/dev/null 2>&1; then $(DC) down -v --remove-orphans; fi
	-@if docker info >/dev/null 2>&1; then for lab in $$($(HOSTPY) -m socklab.host.hostctl labs); do \
	  echo "socklab: removing lab $$lab" >&2; $(HOSTPY) -m socklab.host.hostctl remove --project "socklab-$$lab"; done; fi
	-@docker ps -aq --filter label=socklab.test-run | xargs -r docker rm -fv >/dev/null
	-@docker network ls -q --filter label=socklab.test-run | xargs -r docker network rm >/dev/null
	-@docker volume ls -q --filter label=socklab.test-run | xargs -r docker volume rm >/dev/null
	-@docker ps -aq --filter label=socklab.bench-run | xargs -r docker rm -fv >/dev/null
	-@docker network ls -q --filter label=socklab.bench-run | xargs -r docker network rm >/dev/null
	-@docker volume ls -q --filter label=socklab.bench-run | xargs -r docker volume rm >/dev/null
	-@$(HOSTPY) -m socklab.host.vms down >/dev/null 2>&1
	-@docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^socklab-(lab|base|vm):' | xargs -r docker rmi
	rm -rf $(VENV) .pytest_cache .ruff_cache test-reports .image-build.lock services/*.egg-info .vms .tools
	find services tests -name __pycache__ -type d -prune -exec rm -rf {} +
