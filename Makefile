# abono: `make run` brings the product up on its embedded default; `make test` runs the suite.
SHELL := /bin/bash
APP := .venv-app/bin
TODAY ?= $(shell date +%F)
TZ_EVAL ?= America/New_York
EVAL ?= ../shared/eval/public_en.csv

.PHONY: setup train run test test-unit test-clock lint audit i18n nlu-eval bench bench-campaign chaos clean

setup:
	@bash scripts/setup.sh

train: setup
	@bash scripts/train.sh

# The sandbox is asked for here (and by the tests); a bare `abono up` is a production start.
run: train
	@ABONO_SANDBOX=true $(APP)/abono up --demo data/demo_accounts.csv --history

test: train
	@bash scripts/browser.sh
	@bash scripts/test.sh

test-unit: setup
	@$(APP)/python -m pytest tests/unit -q

# The unit suite under Debian's faketime: a leap day at 23:59 and DST changes, years ahead.
test-clock: setup
	@bash scripts/clock-check.sh

lint: setup
	$(APP)/ruff check abono channels policies bot tests
	$(APP)/ruff format --check abono channels policies bot tests
	$(APP)/lint-imports
	$(APP)/mypy

# pip-audit of both lock files; needs a vulnerability service (OSV or PyPI's JSON API) and
# exits 2 where none is reachable, so it is not in .ci/run yet (docs/dependencies.md).
audit: setup
	@bash scripts/audit.sh

i18n: setup
	$(APP)/pybabel extract -F babel.cfg -o locales/messages.pot --no-location --sort-by-file --project abono --version 0.1 .
	$(APP)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete --width 100
	$(APP)/pybabel compile -d locales -D messages --statistics

nlu-eval: train
	$(APP)/abono nlu-eval $(EVAL) --today $(TODAY) --tz $(TZ_EVAL) > var/nlu-eval.jsonl

bench: train
	$(APP)/python -m tests.bench.plans
	$(APP)/python -m tests.bench.handoffs
	$(APP)/python -m tests.bench.throughput
	$(APP)/python -m tests.bench.campaign --postgres

bench-campaign: setup
	$(APP)/python -m tests.bench.campaign --postgres

# Each infrastructure fault against the product on a private PostgreSQL (docs/faults.md): a
# table per fault; fails unless nothing was lost and nothing duplicated.
chaos: train
	PYTHONPATH=$(CURDIR) $(APP)/python -m tests.chaos

clean:
	rm -rf var models .venv-app .venv-engine .venv-audit
