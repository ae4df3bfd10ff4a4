# syscage — see README.md. Everything here runs as root on Debian 12.
SHELL := /bin/bash
PYTHON_SYSTEM := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PREFIX ?= /usr/local
KERNEL := $(shell uname -r)
APT_PACKAGES := python3-bpfcc bpfcc-tools linux-headers-amd64 runc containerd busybox-static apparmor \
	libseccomp2 python3-venv strace
PYTEST_FLAGS ?= -q -ra

.PHONY: all deps venv test unit integration demo lint bench install uninstall clean

all: venv

## deps: apt packages, kernel-header link for bcc, tracefs (idempotent; needs root)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# bcc compiles against /lib/modules/<running kernel>/build; Debian's headers are the closest we have.
	@if [ ! -e /lib/modules/$(KERNEL)/build/Makefile ]; then \
		mkdir -p /lib/modules/$(KERNEL); \
		ln -sfn $$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -1) /lib/modules/$(KERNEL)/build; \
		ln -sfn $$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -1) /lib/modules/$(KERNEL)/source; \
		echo "linked kernel headers for $(KERNEL)"; \
	fi
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing

## venv: virtualenv that sees Debian's bcc, with syscage installed editable
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

## test: everything (unit, lint, then integration as root with real runc, containerd and eBPF)
test: deps venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_FLAGS) tests integration

unit: venv
	$(PY) -m pytest $(PYTEST_FLAGS) tests

integration: deps venv
	$(PY) -m pytest $(PYTEST_FLAGS) integration

lint: venv
	$(VENV)/bin/ruff check .

## demo: learn a profile for a busybox container, then enforce it
demo: deps venv
	$(VENV)/bin/syscage demo

## bench: benchmark suite (prints a table, writes bench/results.json)
bench: deps venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
