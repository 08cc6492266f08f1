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

.PHONY: all deps venv collection setup demo test lint sanity units matrix integration molecule build bench clean realbin

all: test

deps: .cache/deps.stamp
.cache/deps.stamp: Makefile
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p .cache && touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

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

# ansible-test sanity and units on the oldest (2.17) and newest (2.21) ansible-core, molecule vxlan on the newest
matrix: setup
	.ci/matrix

# flanneld v0.28.9 and flannel's CNI plugin, built with Go from the module proxy into
# ~/.cache/kubeasz-network once per machine (tests/realbin/build.sh; about 3 minutes on 2 cores)
realbin:
	tests/realbin/build.sh

integration: setup realbin
	$(PYTEST) -p no:cacheprovider -n 2 --dist loadfile --durations=25 tests/integration

molecule: setup
	@if ls molecule/*/molecule.yml >/dev/null 2>&1; then molecule test --all; else echo "no molecule scenarios"; fi

build: setup
	rm -rf .cache/build && mkdir -p .cache/build
	ansible-galaxy collection build --force --output-path .cache/build .
	ansible-galaxy collection install --force -p .cache/build/installed .cache/build/kubeasz-network-*.tar.gz
	test -f .cache/build/installed/ansible_collections/kubeasz/network/plugins/modules/vxlan_link.py

# BENCH_SCALE_SIZES=4,8,16,32 make bench adds a 32-node lab (about 10 minutes more on 2 cores)
BENCH_SCALE_SIZES ?= 4,8,16
bench: setup realbin
	$(BIN)/python bench/bench_dataplane.py --sizes 1000,5000 --ansible
	$(BIN)/python bench/bench_flanneld.py --sizes 100,1000
	$(BIN)/python bench/bench_etcd.py
	$(BIN)/python bench/bench_scale.py --sizes $(BENCH_SCALE_SIZES)

clean:
	rm -rf .cache $(VENV) tests/output
