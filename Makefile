# Two commands do everything on a fresh machine: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test lint bench install browser iproute clean lock openapi node

# Every machine installs the set CI tested: constraints.txt pins each package (`make lock`).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Re-resolve pyproject.toml from scratch in a throw-away venv and pin the result.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	{ sed -n 1,2p constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | grep -vi '^calsync'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

# Debian's chromium for the demo page's browser test (apt needs root, or sudo without a password).
# Without it the browser tests skip, except under CI=true where they must run.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  elif [ "$$CI" = true ]; then echo "CI needs chromium and apt-get is unusable here" >&2; exit 1; \
	  else echo "chromium is missing and apt-get is unusable: the browser tests will skip"; exit 0; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core; }

# iproute2's `ip` for the multi-host tests (tests/hosts: network namespaces, root only). Without
# it they skip, except under CI=true where they must run.
iproute:
	@command -v ip >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; \
	  elif [ "$$CI" = true ]; then echo "CI needs iproute2 and apt-get is unusable here" >&2; exit 1; \
	  else echo "iproute2 is missing and apt-get is unusable: the multi-host tests will skip"; fi; }

# Node and npm from Debian where missing (root, or sudo without a password), for `make openapi`.
node:
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; }

# One command after any route or schema change: openapi.json, then the frontend's TypeScript
# types from it (openapi-typescript, pinned in frontend/package-lock.json). Commit both.
openapi: install node
	CALSYNC_ENV=local $(PY) -m api.openapi_export openapi.json
	cd frontend && npm ci --silent --no-audit --no-fund && npm run --silent types

dev: install
	$(PY) -m deployments.local_stack

test: install browser iproute
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) -m bench.report

clean:
	rm -rf .calsync
