# Entry points for people and CI. `make drill` and `make test` set up everything
# they need on a fresh machine (Debian packages, .venv, Compose plugin, dockerd).

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export TRUEBOND_DRILL_HOME ?= /var/tmp/truebond-drill
export DOCKER_BUILDKIT := 0
# pytest exits 5 when it collects no test; an empty selection is not a failure here.
PYTEST = $(VENV)/bin/pytest
pytest = $(PYTEST) $(1) || [ $$? -eq 5 ]

.PHONY: drill-scheduled bench-datastores test-log host stack drill drill-db drill-full drill-down lint unit integration molecule host-state test bench build

host:
	bash tests/stack/host.sh
	ln -sf $(CURDIR)/plugins/plugin_utils/truebond-rollback $(VENV)/bin/truebond-rollback

stack: host
	bash tests/stack/stack.sh up v1.0.0

# The main job: the stack starts on the broken v1.0.0 and is rolled back to v0.9.5.
drill: stack
	ansible-playbook playbooks/rollback_app.yml -e version=v0.9.5 -e severity=high \
	  -e issue="Drill: v1.0.0 breaks authentication" \
	  -e symptoms="Drill: /api/auth/health answers 500 after the v1.0.0 deploy"
	@bash tests/stack/stack.sh status
	@echo "The backend answers at http://127.0.0.1:18080/api/health; remove the stack with: make drill-down"

# The data rollbacks: seed the stores on v0.9.5, take the pre-deploy backup, deploy
# v1.0.0 (its migration changes the data), then roll back (Type 2 or Type 3).
drill-db drill-full: stack
	bash tests/stack/stack.sh set v0.9.5
	bash tests/stack/stack.sh seed
	ansible-playbook playbooks/snapshot.yml
	bash tests/stack/stack.sh set v1.0.0
	ansible-playbook playbooks/rollback_$(subst drill-,,$@).yml -e version=v0.9.5 -e confirm=yes \
	  -e drop_new_collections=true -e severity=high \
	  -e issue="Drill: the v1.0.0 migration breaks the data"
	@bash tests/stack/stack.sh status

# The scheduled drill: deploy the bad release, let the decision matrix detect it,
# roll back, verify, and record the RTO in the drill history with the trend chart.
drill-scheduled: stack
	ansible-playbook playbooks/drill.yml

drill-down:
	bash tests/stack/stack.sh down

build: host
	mkdir -p tests/output
	ansible-galaxy collection build --force --output-path tests/output .

lint: host
	yamllint -s .
	ruff check plugins tests bench
	ruff format --check plugins tests bench
	ansible-lint --profile production
	bash tests/lint-docs.sh

# The callback tests import Ansible's controller code, which routes module warnings
# to the display instead of the module result, so they run in their own process.
unit: host
	$(call pytest,-q tests/unit/plugins/modules tests/unit/plugins/module_utils tests/unit/plugins/fuzz)
	$(call pytest,-q tests/unit/plugins/callback tests/unit/plugins/plugin_utils)

# The tests marked drill_machine (every test of the drill stack, see
# tests/integration/conftest.py) run one at a time. The others use only servers,
# files and locks of their own, so a second pytest process runs them at the same
# time, and its output follows at the end. Exit code 5 (no test selected) passes.
integration: stack
	mkdir -p tests/output
	$(PYTEST) -q --durations=10 -m "not drill_machine" tests/integration \
	  > tests/output/integration-independent.log 2>&1 & independent=$$!; \
	$(PYTEST) -q --durations=30 -m drill_machine tests/integration; machine=$$?; \
	wait $$independent; other=$$?; \
	echo "--- The tests beside the drill stack (-m 'not drill_machine'):"; \
	cat tests/output/integration-independent.log; \
	for rc in $$machine $$other; do [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; done

# Molecule keeps each scenario's state (such as "prepared") between runs of the same
# checkout, and would then skip the prepare step that resets the drill stack.
molecule: stack
	molecule reset -s default
	molecule test -s default
	molecule reset -s feature_disable
	molecule test -s feature_disable
	molecule reset -s rollback_db
	molecule test -s rollback_db
	molecule reset -s rollback_full
	molecule test -s rollback_full

# Host state after the Molecule run, read with testinfra.
host-state: stack
	$(call pytest,-q tests/host --hosts=local://)

# Every ansible-playbook run of the test suite writes its output to one log, which
# tests/host/test_secrets.py searches for the test inventories' secrets at the end.
test: export ANSIBLE_LOG_PATH := $(CURDIR)/tests/output/ansible.log
test: test-log lint unit integration molecule host-state

test-log:
	mkdir -p tests/output
	rm -f tests/output/ansible.log
	touch tests/output/test-started

bench: stack
	$(VENV)/bin/python bench/downtime.py

# Snapshot and restore throughput of MongoDB and Redis at three sizes, on servers of
# its own (about 25 minutes).
bench-datastores: host
	$(VENV)/bin/python bench/datastores.py
