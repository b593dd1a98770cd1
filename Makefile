# One entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help setup bundle vm-image lint vars collection sanity units molecule check lab lab-down e2e bench test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install Debian packages and the pinned Python toolchain (.venv)
	bash tests/setup-host.sh

# The lab's offline bundle (kubeadm, kubelet, kubectl, images... built from the Go modules and Debian's
# packages; cached by recipe under /var/tmp/kubelab/cache). The unit tier runs the real kubeadm and
# kubectl from it, the e2e installs it.
BUNDLE_SUMMARY := build/bundle-summary.json

bundle: setup ## start Docker Engine and build (or reuse) the lab's offline bundle
	bash tests/lab/host-docker.sh
	mkdir -p build
	$(BIN)/python tests/lab/build/build.py --summary-json $(BUNDLE_SUMMARY)

vm-image: setup ## build (or reuse) the VM tier's Debian 12 image: a libvirt Vagrant box and a QEMU disk (tests/vm/box.py)
	$(BIN)/python tests/vm/box.py --suite bookworm

# Every pytest tier CI runs prints the reason of each skip (-rs) and fails on one (tests/conftest.py).
STRICT := -rs --fail-on-skip

lint: setup ## yamllint, ansible-lint (production), ruff, changelog lint, cluster_* docs up to date
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	$(BIN)/ruff check .
	$(BIN)/antsibull-changelog lint
	$(BIN)/python tests/gen_cluster_vars.py --check

vars: setup ## regenerate docs/cluster-variables.md and the inventories' cluster_* comments from playbooks/vars/cluster_spec.yml
	$(BIN)/python tests/gen_cluster_vars.py

collection: setup ## build the tarball, install it offline, ansible-doc every module from that install
	bash tests/collection-install.sh

sanity: setup ## ansible-test sanity (offline-safe wrapper)
	bash tests/sanity.sh

units: setup bundle ## unit tests (modules, role logic, bundle.yml on loopback; the real kubeadm) with line coverage of plugins/ (>= 90 %)
	KUBELAB_BUNDLE_DIR=$$(jq -r .bundle_dir $(BUNDLE_SUMMARY)) $(BIN)/pytest tests/unit tests/roles tests/bundle -q $(STRICT) \
	  --cov=ansible_collections.kubelab.kubeadm.plugins --cov-report=term --cov-fail-under=90

molecule: setup ## the VM scenarios' checks that need no VM (molecule's vagrant driver, rendered Vagrantfile, prepare checks)
	$(BIN)/pytest tests/molecule -q $(STRICT)

check: lint collection sanity units molecule ## the static and unit tiers

# The lab runs are pytest sessions (tests/lab/conftest.py): one test per phase, the lab a session fixture.
LAB_PYTEST := $(BIN)/pytest tests/lab -s -rfE $(STRICT) --junitxml=build/lab-junit.xml $(LAB_ARGS)

lab: setup ## bring up the local two-node cluster in containers and keep it (kubeconfig: build/kubeconfig)
	bash tests/lab/host-docker.sh
	$(LAB_PYTEST) -m lab --lab-keep --lab-nodes 2

lab-down: setup ## tear the local cluster down
	$(BIN)/python tests/lab/lab.py down

e2e: setup ## the container-lab end-to-end run, every phase, then teardown (report: build/lab-report.json)
	bash tests/lab/host-docker.sh
	$(LAB_PYTEST)

# Not part of `make test`: timings are reported (build/bench-report.json), never asserted.
bench: setup ## time site.yml on fresh nodes, the no-op re-run, a kubelet-port change and add_worker.yml (top tasks each)
	bash tests/lab/host-docker.sh
	$(BIN)/pytest tests/lab/bench_lab.py -s -rfE $(STRICT) --lab-nodes 3 $(LAB_ARGS)

test: check e2e ## everything CI runs
