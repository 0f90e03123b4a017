# The two commands a new user needs: `make run` and `make test`. Everything else is set up by them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 2
FUNCTION_DIRS := $(wildcard functions/*)
# What a function needs beyond the layer (functions/<group>/requirements.in): `make lock` compiles
# it into the requirements.txt `sam build` installs into the function, and the lock includes it,
# so .venv has it too (the local edge runs the functions in-process).
FUNCTION_INPUTS := $(wildcard functions/*/requirements.in)
# The one lock of exact versions (with every file's hash) that .venv, the layer, each function and
# the benchmark's hello world are all installed from: `make lock` (README "Development").
LOCK := requirements.lock
# The SAM CLI (with cfn-lint and the SAM transform the tests run) lives in a virtualenv of its
# own, installed from a lock of its own: its pins (pydantic among them) never hold the layer's.
SAM_IN := infra/sam-cli.in
SAM_LOCK := infra/sam-cli.lock

.PHONY: lock run test lint typecheck pytest bench fuzz validate sam-cache sam-build deploy sync local-api invoke clean

# pip stays quiet (its full output is hundreds of lines): the steps say what is happening.
# Every package comes from the lock, hash-checked (pip's --require-hashes mode, which a hashed
# file turns on); the gateway itself is then installed editable, adding no package of its own.
$(STAMP): pyproject.toml $(LOCK)
	@echo "make: setting up $(VENV) with $(PYTHON) (first run, or the dependencies changed)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: installing the locked versions of the gateway's, its functions' and the dev" \
		"tools' packages into $(VENV) ($(LOCK)): about 2 minutes the first time, quiet until done"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)
	@echo "make: $(VENV) is ready"

# Re-resolve requirements.lock from pyproject.toml's ranges (and functions/*/requirements.in),
# keeping every version it already pins that still fits; UPGRADE="pydantic fastapi" moves those
# packages to their newest fitting release, UPGRADE=all everything. Then the layer's, each
# function's and hello world's requirements.txt are compiled from it (the same versions and
# hashes, only what each needs). uv resolves for Python 3.11 on every platform (--universal), so
# the lock is the same whichever machine runs this; tests/test_dependencies.py checks the rest.
UV_COMPILE := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock"
UPGRADE ?=
UV_UPGRADE := $(if $(filter all,$(UPGRADE)),--upgrade,$(addprefix --upgrade-package ,$(UPGRADE)))
# uv rewrites a file whose content did not change, and a newer lock reinstalls .venv and .venv-sam
# (~3 min): each compile writes a copy, put in place only if it differs (lucid_edge.lockfile).
KEEP := $(BIN)/python -m lucid_edge.lockfile
lock: $(STAMP)
	$(KEEP) $(LOCK) $(UV_COMPILE) $(UV_UPGRADE) --extra dev pyproject.toml $(FUNCTION_INPUTS) -o {}
	$(KEEP) $(SAM_LOCK) $(UV_COMPILE) $(UV_UPGRADE) $(SAM_IN) -o {}
	set -o pipefail; $(BIN)/lucid requirements \
		| $(KEEP) shared/requirements.txt $(UV_COMPILE) - -c $(LOCK) -o {}
	@for input in $(FUNCTION_INPUTS); do echo "compiling $${input%.in}.txt"; \
		$(KEEP) $${input%.in}.txt $(UV_COMPILE) $$input -c $(LOCK) -o {} || exit 1; done
	printf 'fastapi\nmangum\n' \
		| $(KEEP) bench/lambda/hello/requirements.txt $(UV_COMPILE) - -c $(LOCK) -o {}

run: $(STAMP)
	$(BIN)/lucid serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p lucid -p lucid_edge
	$(BIN)/mypy infra/lambda_build.py
	$(BIN)/mypy tests bench
	@# Each function is its own Lambda package (every one has an `app` module): check one at a time.
	@for d in $(FUNCTION_DIRS); do echo "mypy $$d"; MYPYPATH=$$d $(BIN)/mypy $$d/*.py || exit 1; done

# The real TronWeb for the interop test (tests/interop). Optional: without npm the test skips.
TRONWEB := tests/interop/node_modules/tronweb/package.json
$(TRONWEB): tests/interop/package.json
	@command -v npm >/dev/null && npm install --prefix tests/interop --no-audit --no-fund --silent \
		|| echo "TronWeb not installed: the interop test will be skipped"

# $(call debian,PACKAGE,WHAT NEEDS IT): install Debian's PACKAGE quietly, after `apt-get update`
# if the package lists are stale; make stops if that fails too.
define debian
	@echo "installing Debian's $(1) for $(2)"
	@apt-get install -y -qq $(1) >/dev/null 2>&1 \
		|| (apt-get update -qq >/dev/null && apt-get install -y -qq $(1) >/dev/null)
endef

# The API reference's browser test (tests/e2e/test_docs_browser.py) drives Debian's Chromium: a
# browser a test tool would download cannot be fetched on our machines.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(call debian,chromium,the API reference's browser test)

# The monitoring tests (tests/monitoring/) run Debian's Prometheus and promtool. Without them
# (apt-get failed) those tests skip, saying so.
PROMETHEUS := /usr/bin/promtool
$(PROMETHEUS):
	$(call debian,prometheus,the monitoring tests) \
		|| echo "prometheus not installed: the monitoring tests will be skipped"

# valgrind counts instructions for `make bench coldstart` (and its test in tests/bench/).
VALGRIND := /usr/bin/valgrind
$(VALGRIND):
	$(call debian,valgrind,the cold-start bench's instruction counts) \
		|| echo "valgrind not installed: its test in tests/bench/ will be skipped"

# wrk loads the edge for `make bench`, and drives the bench's PATCH script in its test
# (tests/bench/test_routes_patch_load.py). When it cannot be installed, that test skips (saying
# so) and `make bench` fails before its first scenario if one of them loads with wrk (bench
# __main__: every scenario but coldstart and requests), naming them.
WRK := /usr/bin/wrk
$(WRK):
	$(call debian,wrk,the bench's loads and the test of its PATCH script) \
		|| echo "wrk not installed: its test in tests/bench/ will be skipped, and a bench that" \
			"loads with wrk will stop"

# The built-artifact tests (tests/infra/test_built_artifact.py) run the real `sam build`.
pytest: $(STAMP) $(TRONWEB) $(SAM_VENV)/bin/sam $(CHROMIUM) $(PROMETHEUS) $(VALGRIND) $(WRK)
	rm -f .coverage .coverage.*
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=95 -p no:cacheprovider

# The conformance fuzz run at full size (`make test` runs a bounded one): FUZZ_EXAMPLES test
# cases per operation and identity (anonymous, signed in, admin); the summary is printed and
# kept in test-artifacts/fuzz/.
FUZZ_EXAMPLES ?= 60
fuzz: $(STAMP)
	LUCID_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider -s \
		tests/e2e/test_fuzz.py

# `make bench` runs every scenario; `make bench coldstart` (or any scenario names) only those.
BENCH_SCENARIOS := $(filter-out bench,$(MAKECMDGOALS))
bench: $(STAMP) $(SAM_VENV)/bin/sam $(VALGRIND) $(WRK)
	$(BIN)/python -m bench $(BENCH_SCENARIOS)
ifneq ($(filter bench,$(MAKECMDGOALS)),)
$(BENCH_SCENARIOS):
	@:
endif

validate: $(SAM_VENV)/bin/sam
	AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/cfn-lint infra/template.yaml

# aws-sam-cli pins its own versions of shared libraries: it gets a venv of its own, made afresh
# from its lock whenever that changes (so it holds exactly the lock), hash-checked like .venv.
$(SAM_VENV)/bin/sam: $(SAM_LOCK)
	@echo "make: installing aws-sam-cli into $(SAM_VENV) from $(SAM_LOCK) (about a minute, quiet)"
	$(PYTHON) -m venv --clear $(SAM_VENV)
	@# Python 3.11's own pip (23.x) refuses a hashed dependency asked for with extras (aws-sam-cli
	@# asks for boto3-stubs[...]) as "not pinned"; a current one installs it.
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet --require-hashes -r $(SAM_LOCK)
	touch $@

# The project's samconfig.toml, named with its absolute path: with `--template-file
# infra/template.yaml` sam-cli looks for the config beside the template (infra/samconfig.toml,
# which does not exist) and resolves a relative --config-file from there too (aws-sam-cli,
# samcli/commands/_utils/options.py get_or_default_template_file_name sets samconfig_dir;
# samcli/cli/cli_config_file.py configuration_callback).
SAM_CONFIG := --config-file $(CURDIR)/samconfig.toml
# SAM's build cache (`cached = true` in samconfig.toml; `sam sync` always builds cached) decides
# whether to rebuild the layer (BuildMethod makefile) from its ContentUri folder's files alone
# (aws-sam-cli, samcli/lib/build/build_strategy.py, CachedBuildStrategy: dir_checksum(code_dir));
# the python3.11 functions are rebuilt each time by its incremental strategy. The build rules SAM
# cannot see (infra/Makefile, infra/lambda_build.py and the Python compiling the bytecode) key
# the whole cache here: when they change, it is dropped and everything is rebuilt.
# tests/infra/test_build_cache.py changes lambda_build.py between two builds.
SAM_CACHE_KEY := .aws-sam/build-rules.sha256
sam-cache:
	@key="$$(cat infra/Makefile infra/lambda_build.py | sha256sum | cut -d' ' -f1) $$($(PYTHON) --version 2>&1)"; \
	if [ "$$key" != "$$(cat $(SAM_CACHE_KEY) 2>/dev/null)" ]; then \
		echo "make: new build rules or Python: dropping SAM's build cache (.aws-sam/cache)"; \
		rm -rf .aws-sam/cache .aws-sam/deps && mkdir -p .aws-sam && echo "$$key" > $(SAM_CACHE_KEY); \
	fi

sam-build: $(SAM_VENV)/bin/sam sam-cache
	$(SAM) validate $(SAM_CONFIG) --lint --template-file infra/template.yaml
	$(SAM) build $(SAM_CONFIG) --template-file infra/template.yaml

# --- deploying (AWS credentials) and sam local (a Docker engine) ------------------------------
# Every setting comes from samconfig.toml's environment: never add --parameter-overrides here,
# it would replace that list (README "Build and deploy").
ENV ?= dev
SAM := AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# `make invoke FUNCTION=UsersFunction` reads events/users.json unless EVENT names another file.
EVENT ?= events/$(shell echo '$(FUNCTION)' | sed 's/Function$$//' | tr '[:upper:]' '[:lower:]').json

# Build (with bytecode), then deploy the environment's stack: `make deploy ENV=prod`.
deploy: sam-build
	$(SAM) deploy $(SAM_CONFIG) --config-env $(ENV)

# One function's (or the layer's) code, straight to the deployed stack, no CloudFormation:
# `make sync ENV=dev FUNCTION=AuthFunction` (FUNCTION=SharedLayer after a change in shared/).
sync: $(SAM_VENV)/bin/sam sam-cache
	@test -n "$(FUNCTION)" || { echo "usage: make sync ENV=dev FUNCTION=<logical id>" >&2; exit 2; }
	$(SAM) sync $(SAM_CONFIG) --config-env $(ENV) --code --resource-id $(FUNCTION)

# The env.json sam local reads: Redis and MongoDB on this machine, one shared JWT key.
.lucid/env.json: $(STAMP)
	$(BIN)/lucid env-json --output $@

# sam local start-api on http://127.0.0.1:3001 (Docker; Redis on 6379 and MongoDB on 27017 here).
# Without --template-file sam-cli would find ./samconfig.toml by itself (make runs recipes in
# this directory); $(SAM_CONFIG) says so on every SAM command alike.
local-api: sam-build .lucid/env.json
	$(SAM) local start-api $(SAM_CONFIG) --add-host host.docker.internal:host-gateway

# One function, one event: `make invoke FUNCTION=UsersFunction [EVENT=events/users.json]`.
invoke: sam-build .lucid/env.json
	@test -n "$(FUNCTION)" || { echo "usage: make invoke FUNCTION=<logical id> [EVENT=file]" >&2; exit 2; }
	$(SAM) local invoke $(SAM_CONFIG) $(FUNCTION) --event $(EVENT) --add-host host.docker.internal:host-gateway

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .lucid/env.json .coverage .coverage.* .pytest_cache .mypy_cache \
		.ruff_cache test-artifacts
