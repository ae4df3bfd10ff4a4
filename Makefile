# syscage — see README.md. Everything here runs as root on Debian 12.
SHELL := /bin/bash
PYTHON_SYSTEM := /usr/bin/python3
VENV := .venv
# virtme-ng (the real-kernel lane's `vng`) lives apart: its dependencies must not load into syscage's venv.
LANE_VENV := .venv-lane
PY := $(VENV)/bin/python
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc/syscage
STATEDIR ?= /var/lib/syscage
LOGDIR ?= /var/log/syscage
SYSTEMDDIR ?= /etc/systemd/system
LIBDIR = $(PREFIX)/lib/syscage
MANIFEST = $(LIBDIR)/installed-files
COMMANDS := syscage syscage-hook syscage-tracer syscage-runtime containerd-shim-syscage-v2 syscage-runtime-py \
	containerd-shim-syscage-v2-py
KERNEL := $(shell uname -r)
APT_PACKAGES := python3-bpfcc bpfcc-tools linux-headers-amd64 runc containerd busybox-static crun apparmor golang-go \
	libseccomp2 python3-venv strace gcc libc6-dev qemu-system-x86 linux-image-amd64 chromium redis-tools podman
PYTEST_FLAGS ?= -q -ra

.PHONY: all deps venv lane-venv test unit integration demo lint bench install uninstall clean

all: venv

## deps: apt packages, kernel-header link for bcc, tracefs (idempotent; needs root)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@# bcc compiles against /lib/modules/<running kernel>/build; Debian's headers are the closest we have.
	@if [ ! -e /lib/modules/$(KERNEL)/build/Makefile ]; then \
		mkdir -p /lib/modules/$(KERNEL); \
		ln -sfn $$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -1) /lib/modules/$(KERNEL)/build; \
		ln -sfn $$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -1) /lib/modules/$(KERNEL)/source; \
		echo "linked kernel headers for $(KERNEL)"; \
	fi
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing

LAUNCHER_SOURCES := setup.py shim/launcher.h shim/launcher.c shim/shim_launcher.c shim/launcher_build.py

## venv: virtualenv that sees Debian's bcc, with syscage installed editable (the install compiles the C
## launchers, `syscage-runtime` and `containerd-shim-syscage-v2`: see setup.py)
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml $(LAUNCHER_SOURCES)
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

## lane-venv: virtme-ng, which boots Debian's own kernel for integration/realkernel/ (see README)
lane-venv: $(LANE_VENV)/bin/vng
$(LANE_VENV)/bin/vng:
	$(PYTHON_SYSTEM) -m venv $(LANE_VENV)
	$(LANE_VENV)/bin/python -m pip install -q --disable-pip-version-check 'virtme-ng>=1.30'

## test: everything (unit, lint, then integration as root with real runc, containerd and eBPF, and the
## real-kernel lane)
test: deps venv lane-venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_FLAGS) tests integration

unit: venv
	$(PY) -m pytest $(PYTEST_FLAGS) tests

integration: deps venv lane-venv
	$(PY) -m pytest $(PYTEST_FLAGS) integration

lint: venv
	$(VENV)/bin/ruff check .
	@# the C launchers: warnings are errors here
	@for c in shim/launcher.c shim/shim_launcher.c; do \
		gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wconversion -Werror -fsyntax-only $$c || exit 1; done

## demo: learn a profile for a busybox container, then enforce it
demo: deps venv
	$(VENV)/bin/syscage demo

## bench: benchmark suite (prints a table, writes bench/results.json)
bench: deps venv
	$(PY) bench/run.py

## install: commands in $(PREFIX)/bin (from a private venv in $(LIBDIR)), config (never overwritten),
## state directories, the tracer's systemd unit (not enabled). `make uninstall` removes what this added.
install: deps
	@set -e; mkdir -p $(PREFIX)/bin $(LIBDIR); : > $(MANIFEST).new; \
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(LIBDIR)/venv; \
	$(LIBDIR)/venv/bin/python -m pip install -q --disable-pip-version-check .; \
	for c in $(COMMANDS); do ln -sfn $(LIBDIR)/venv/bin/$$c $(PREFIX)/bin/$$c; echo $(PREFIX)/bin/$$c >> $(MANIFEST).new; done; \
	if [ ! -e $(SYSCONFDIR)/config.toml ]; then \
		install -D -m 0644 config/config.toml $(SYSCONFDIR)/config.toml; echo $(SYSCONFDIR)/config.toml >> $(MANIFEST).new; \
	else echo "kept existing $(SYSCONFDIR)/config.toml"; fi; \
	for d in $(STATEDIR) $(LOGDIR); do [ -d $$d ] || { install -d -m 0755 $$d; echo $$d/ >> $(MANIFEST).new; }; done; \
	if [ -d $(SYSTEMDDIR) ]; then \
		install -m 0644 config/systemd/syscage-tracer.service $(SYSTEMDDIR)/; \
		echo $(SYSTEMDDIR)/syscage-tracer.service >> $(MANIFEST).new; fi; \
	[ -f $(MANIFEST) ] && sort -u $(MANIFEST) $(MANIFEST).new > $(MANIFEST).tmp && mv $(MANIFEST).tmp $(MANIFEST).new || true; \
	mv $(MANIFEST).new $(MANIFEST); \
	echo "installed: $(COMMANDS) in $(PREFIX)/bin; config $(SYSCONFDIR)/config.toml"; \
	echo "next: syscage install containerd (prints the containerd snippet; --write applies it)"

## uninstall: remove what `make install` added; profiles in $(STATEDIR) are kept unless it is empty
uninstall:
	@set -e; if [ ! -f $(MANIFEST) ]; then echo "nothing to uninstall (no $(MANIFEST))"; exit 0; fi; \
	while read -r f; do \
		case "$$f" in */) rmdir --ignore-fail-on-non-empty "$$f" 2>/dev/null || true ;; \
		$(SYSCONFDIR)/config.toml) if cmp -s "$$f" config/config.toml; then rm -f "$$f"; rmdir --ignore-fail-on-non-empty $(SYSCONFDIR) || true; \
			else echo "kept $$f (edited since install)"; fi ;; \
		*) rm -f "$$f" ;; esac; \
	done < $(MANIFEST); \
	rm -rf $(LIBDIR); \
	[ -d $(STATEDIR) ] && echo "kept $(STATEDIR) (profiles)" || true; \
	echo "uninstalled"

clean:
	rm -rf $(VENV) $(LANE_VENV) .pytest_cache .ruff_cache
