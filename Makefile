# make demo: a lab cluster of namespace nodes networked by flannel through `ezctl setup <lab> 06`.
# make test: every check CI runs. Both install what they need first (Debian packages, .venv).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION_LINK := .cache/collections/ansible_collections/kubeasz/network
DEBIAN_PACKAGES := iproute2 iputils-ping traceroute tcpdump util-linux containernetworking-plugins \
	etcd-server etcd-client git tar iptables nftables graphviz gcc libc6-dev
PYTEST ?= pytest

.PHONY: all deps venv collection setup demo test lint sanity units matrix integration molecule build bench clean lock test-latest realbin

all: test

deps: .cache/deps.stamp
.cache/deps.stamp: Makefile
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p .cache && touch $@

# every venv comes from a lock in .ci/lock (.ci/venv); `make lock` re-resolves them on purpose
venv: $(VENV)/.lock-stamp
$(VENV)/.lock-stamp: pyproject.toml .ci/lock/dev.txt .ci/venv
	.ci/venv dev $(VENV)

lock:
	.ci/venv --lock

# the unit and collection-install tests on the newest versions the index serves today: an upstream
# change shows up here, by name, before `make lock` takes it into the locked `make test`
LATEST := $(CURDIR)/.cache/latest
test-latest: deps collection
	.ci/venv --latest dev $(LATEST)
	PATH=$(LATEST)/bin:$$PATH $(LATEST)/bin/python -m pip list --format=freeze | grep -i -E '^(ansible-core|ansible-lint|cryptography|galaxy.importer|pytest)=='
	PATH=$(LATEST)/bin:$$PATH ANSIBLE_TEST_WORKDIR=$(CURDIR)/.cache/latest-work .ci/ansible-test/run units --python 3.11 --color no
	PATH=$(LATEST)/bin:$$PATH $(LATEST)/bin/pytest -p no:cacheprovider tests/integration/test_collection_install.py

collection: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

setup: deps venv collection

demo: setup
	$(BIN)/python -m ezctl.demo

test: setup lint sanity units integration molecule build
	@echo "make test: all checks passed"

lint: setup
	yamllint -s .
	ansible-lint --offline

sanity: setup
	.ci/ansible-test/run sanity --python 3.11 --color no

units: setup
	.ci/ansible-test/run units --python 3.11 --color no

# ansible-test sanity and units on ansible-core 2.14 (the oldest: kubeasz 3.7), 2.17 and 2.21 (the newest), molecule vxlan on the newest
matrix: setup
	.ci/matrix

# flanneld v0.28.9 and flannel's CNI plugin, built with Go from the module proxy into
# ~/.cache/kubeasz-network once per machine (tests/realbin/build.sh; about 3 minutes on 2 cores)
realbin:
	tests/realbin/build.sh

# the kubeasz home test also runs on kubeasz's ansible-core 2.14 and the newest; module_utils' units on node Python 3.7
CORE214 := $(CURDIR)/.cache/matrix/core-2.14
CORE_NEWEST := $(CURDIR)/.cache/matrix/core-2.21
NODE_PYTHON := $(CURDIR)/.cache/node-3.7
integration: setup realbin
	.ci/venv core-2.14 $(CORE214)
	.ci/venv core-2.21 $(CORE_NEWEST)
	.ci/venv node-3.7 $(NODE_PYTHON)
	KUBEASZ_CORE214_VENV=$(CORE214) KUBEASZ_CORE_NEWEST_VENV=$(CORE_NEWEST) KUBEASZ_NODE_PYTHON=$(NODE_PYTHON)/bin/python \
		$(PYTEST) -p no:cacheprovider -n 2 --dist loadfile --durations=25 tests/integration

molecule: setup
	@if ls molecule/*/molecule.yml >/dev/null 2>&1; then molecule test --all; else echo "no molecule scenarios"; fi

build: setup
	rm -rf .cache/build && mkdir -p .cache/build
	ansible-galaxy collection build --force --output-path .cache/build .
	ansible-galaxy collection install --force -p .cache/build/installed .cache/build/kubeasz-network-*.tar.gz
	test -f .cache/build/installed/ansible_collections/kubeasz/network/plugins/modules/vxlan_link.py

# bench_scale's lab sizes (the 32-node lab alone takes 10+ minutes on 2 cores: BENCH_SCALE_SIZES=4,8 make bench)
BENCH_SCALE_SIZES ?= 4,8,16,32
bench: setup realbin
	$(BIN)/python bench/bench_dataplane.py --sizes 1000,5000 --ansible
	$(BIN)/python bench/bench_flanneld.py --sizes 100,1000
	$(BIN)/python bench/bench_etcd.py
	$(BIN)/python bench/bench_scale.py --sizes $(BENCH_SCALE_SIZES)
	$(BIN)/python bench/bench_netcheck.py --sizes 4,8

clean:
	rm -rf .cache $(VENV) tests/output
