# The README's commands. PYTHON must be 3.11 for the local torch wheel.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test unit lint bake serve localstack test-checkpoint

setup: $(VENV)/.installed

# $(VENV) with the requirements of $(1), then the project's own packages (pyproject.toml: handler, bake, localdev) as
# an editable install without dependencies: importable by scripts and tests the standard way, a checkout's edits live.
# $(call project_venv,REQUIREMENTS)
define project_venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r $(1)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@
endef

$(VENV)/.installed: requirements.txt requirements-bake.txt requirements-serve.txt requirements-dev.txt pyproject.toml
	$(call project_venv,requirements-dev.txt)

# What `make serve`, `make bake`, `make upload` and `make invoke-s3` need, and no more: the runtime, the bake's torch,
# the S3 emulator (requirements-serve.txt). A first `make serve` installs only these; after `make setup` (a superset)
# they use its venv as it is.
$(VENV)/.installed-serve: requirements.txt requirements-bake.txt requirements-serve.txt pyproject.toml
	$(call project_venv,requirements-serve.txt)
serving := $(if $(wildcard $(VENV)/.installed),$(VENV)/.installed,$(VENV)/.installed-serve)

# The whole suite on moto, then the tests marked s3 (those that talk to S3 and SQS) again against LocalStack,
# started without Docker by scripts/localstack.sh (which makes .venv-localstack on first use: Python 3.13 + PyPI).
test: setup
	$(BIN)/python -m pytest
	bash scripts/localstack.sh run $(BIN)/python -m pytest -q -m s3

# The unit tests alone (tests/unit: no torch, no OpenCV, no baked model, no network; tests/unit/conftest.py refuses
# them): the fast loop, also run by `make test` as part of the whole suite.
unit: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

# LocalStack (S3, SQS) in the background on 127.0.0.1:4566 for runs of your own; scripts/localstack.sh stop ends it.
localstack:
	bash scripts/localstack.sh start

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Bake layer/model/ from the official release (or BAKE_CHECKPOINT=path for an air-gapped build); BAKE_PRECISION=int8
# also writes the int8 model and its measured error (docs/bake.md).
bake: $(serving)
	$(BIN)/python scripts/bake_weights.py $(if $(BAKE_CHECKPOINT),--checkpoint "$(BAKE_CHECKPOINT)") $(if $(BAKE_SHA256),--sha256 "$(BAKE_SHA256)") $(if $(BAKE_PRECISION),--precision "$(BAKE_PRECISION)")

# A test checkpoint (the official keys and shapes, seeded random values) at TEST_CHECKPOINT, for offline demos: it
# makes .venv first, so it works as the first command of a fresh checkout.
TEST_CHECKPOINT ?= /tmp/midas_test.pt
test-checkpoint: $(serving)
	$(BIN)/python scripts/make_test_checkpoint.py "$(TEST_CHECKPOINT)"

# Retake docs/screenshot.png and docs/screenshot-3d.png: the web page with scikit-image's sample photograph, in headless
# Chromium (Debian's, apt), serving layer/model/ (MODEL_DIR=... for another baked model).
.PHONY: screenshot
screenshot: setup
	$(BIN)/python scripts/screenshot.py $(if $(MODEL_DIR),--model-dir "$(MODEL_DIR)")

# The API on 127.0.0.1:8000 with an embedded S3 emulator; bakes layer/model/ first if missing.
serve: $(serving)
	$(BIN)/python scripts/serve_local.py

# ---------------------------------------------------------------------------------------------- image & SAM
# .venv-tools: aws-sam-cli + cfn-lint (+ dockerfile, Docker's own Dockerfile parser, for the tests), apart from
#   .venv because aws-sam-cli pins boto3 to another version. The runtime's own environment is the image itself
#   (make image; tests/e2e/test_image.py).
TOOLS_VENV ?= .venv-tools
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
DOCKERFILE_PARSER_VERSION := 3.4.0
TOOLS_STAMP := $(TOOLS_VENV)/.installed-sam-$(SAM_CLI_VERSION)-cfn-lint-$(CFN_LINT_VERSION)-dockerfile-$(DOCKERFILE_PARSER_VERSION)
SAM := SAM_CLI_TELEMETRY=0 $(TOOLS_VENV)/bin/sam

.PHONY: tools-venv validate invoke-s3 upload sam-invoke base-image image bench-image

setup: $(TOOLS_STAMP)
tools-venv: $(TOOLS_STAMP)

# A tool's own venv, made afresh with its pinned packages; the stamp (the target, $@) names the versions.
# $(call pinned_venv,DIR,PACKAGES)
define pinned_venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet $(2)
	touch $@
endef

$(TOOLS_STAMP):
	$(call pinned_venv,$(TOOLS_VENV),aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION) \
	  dockerfile==$(DOCKERFILE_PARSER_VERSION))

# Offline template checks (no credentials, no network): what CI runs through tests/e2e/test_template.py.
validate: $(TOOLS_STAMP)
	$(TOOLS_VENV)/bin/cfn-lint infra/template.yaml
	$(SAM) validate --lint --region us-east-1

# IMAGE must come from the command line (or the environment): the IMAGE below is the container image's tag.
image_given = $(if $(filter file undefined default,$(origin IMAGE)),$(error usage: make $@ IMAGE=photo.jpg [OUT=dir]))

# Upload IMAGE to the emulator's input bucket and run the function on the S3 event (AWS_ENDPOINT_URL, e.g. a
# running LocalStack, or an embedded moto server when unset). make invoke-s3 IMAGE=photo.jpg [OUT=dir]
invoke-s3: $(serving)
	$(image_given)
	$(BIN)/python scripts/local_s3_invoke.py "$(IMAGE)" $(if $(OUT),--download "$(OUT)")

# Upload IMAGE to the running `make serve` stack's input bucket; its trigger writes the heatmap, saved to OUT.
# make upload IMAGE="café terrace.jpg" [OUT=dir]
upload: $(serving)
	$(image_given)
	$(BIN)/python scripts/local_s3_invoke.py --serve "$(IMAGE)" --download "$(or $(OUT),out)"

# The image `sam build` built, under `sam local invoke`, on IMAGE's S3, EventBridge and SQS events, against moto's
# server on the Docker network SAM_NETWORK (its gateway): offline, no LocalStack. make sam-invoke IMAGE=photo.jpg
SAM_NETWORK ?= midas-local
sam-invoke: $(serving) $(TOOLS_STAMP)
	$(image_given)
	$(BIN)/python scripts/sam_local_invoke.py "$(IMAGE)" --network "$(SAM_NETWORK)" --sam "$(TOOLS_VENV)/bin/sam" $(if $(OUT),--out "$(OUT)")

# ---------------------------------------------------------------------------------------------- the image
# The Lambda base image: present, or pulled, or (where no registry answers) a local stand-in built from Debian
# packages by scripts/lambda-base-standin.sh (same paths, env, entrypoint and RIE; for local runs only, never
# to deploy). Needs a running Docker engine; the stand-in also needs root.
BASE_IMAGE := public.ecr.aws/lambda/python:3.12
# BASE_DIGEST=sha256:<digest> builds on exactly that image (docs/deploy.md#pinning-the-base-image); empty = the tag.
BASE_DIGEST ?=
IMAGE ?= midas-depth:local
MODEL_SOURCE ?= prebaked

base-image:
	@docker image inspect "$(BASE_IMAGE)" >/dev/null 2>&1 || docker pull "$(BASE_IMAGE)" \
	  || { echo "$(BASE_IMAGE) cannot be pulled: building the local stand-in" >&2; bash scripts/lambda-base-standin.sh; }

# layer/Dockerfile -> $(IMAGE). MODEL_SOURCE=prebaked ships layer/model/ from `make bake`; bake downloads the
# official checkpoint and bakes it inside the build (CPU torch from PyTorch's index).
image: base-image
	docker build --network host --force-rm -f layer/Dockerfile --build-arg LAMBDA_BASE_DIGEST="$(BASE_DIGEST)" \
	  --build-arg MODEL_SOURCE="$(MODEL_SOURCE)" -t "$(IMAGE)" .

# The image under the Lambda emulator at Lambda's CPU shares (cold start, warm latency, memory).
bench-image: setup base-image
	$(BIN)/python scripts/bench_image.py --sweep --json artifacts/bench-image.json

# ---------------------------------------------------------------------------------------------- supply chain
# requirements.txt is the list a person edits; requirements.lock is its whole closure for the image (Python 3.12,
# every platform: x86_64 and arm64), each version pinned with the sha256 of every file PyPI has for it. The image
# installs the lock with pip --require-hashes. After editing requirements.txt, `make lock`; tests/e2e/test_template.py
# checks that the two agree and that `make lock` makes this very file. LOCK_EXCLUDE_NEWER makes the resolution
# repeatable (nothing published later is considered): move it forward to take newer releases. It resolves afresh
# (--upgrade): the pins already in the file are not preferences, so the lock is what requirements.txt and the date
# give, whatever an older lock held. uv lives in .venv-lock, pinned.
LOCK_VENV ?= .venv-lock
UV_VERSION := 0.13.9
LOCK_STAMP := $(LOCK_VENV)/.installed-uv-$(UV_VERSION)
LOCK_EXCLUDE_NEWER := 2026-11-24T00:00:00Z
LOCK_FILE ?= requirements.lock

.PHONY: lock checkov

$(LOCK_STAMP):
	$(call pinned_venv,$(LOCK_VENV),uv==$(UV_VERSION))

lock: $(LOCK_STAMP)
	$(LOCK_VENV)/bin/uv pip compile requirements.txt --universal --python-version 3.12 --generate-hashes --upgrade \
	  --exclude-newer $(LOCK_EXCLUDE_NEWER) --custom-compile-command "make lock" --quiet --output-file "$(LOCK_FILE)"

# checkov (static security checks) on the template and the Dockerfile, offline (--skip-download). Findings that are
# accepted are suppressed where they arise, each with its reason (the template's checkov Metadata, the Dockerfile's
# checkov:skip comments), and listed in docs/hardening.md#checkov; any other finding fails. Its own venv, pinned.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-checkov-$(CHECKOV_VERSION)
CHECKOV := $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download

$(CHECKOV_STAMP):
	$(call pinned_venv,$(CHECKOV_VENV),checkov==$(CHECKOV_VERSION))

checkov: $(CHECKOV_STAMP)
	$(CHECKOV) --framework cloudformation --file infra/template.yaml
	$(CHECKOV) --framework dockerfile --file layer/Dockerfile

# ---------------------------------------------------------------------------------------------- the stack, emulated
# The stack `sam build` writes, deployed into LocalStack community (a host process from .venv-localstack, with the
# plugin in localstack-plugin/) on 127.0.0.1:$(STACK_PORT), until Ctrl-C: that deletes the stack, stops LocalStack
# and removes its Lambda containers. Bakes layer/model/ first if missing. Template parameters: STACK_PARAMETERS,
# e.g. "IngestMode=queue WritePointCloud=ply". docs/local-aws.md#the-stack-in-localstack
STACK_PORT ?= 4599
STACK_PARAMETERS ?=

.PHONY: stack

stack: setup base-image
	@test -f layer/model/manifest.json || $(MAKE) bake
	$(SAM) build --parameter-overrides ModelSource=prebaked
	$(BIN)/python scripts/stack.py --port $(STACK_PORT) $(STACK_PARAMETERS)

# ---------------------------------------------------------------------------------------------- glTF validator
# The Khronos glTF Validator (npm gltf-validator, pinned) under .tools/ for tests/e2e/test_gltf_validator.py, which
# runs it through scripts/validate_gltf.mjs on every kind of GLB the project writes. Needs node and npm.
GLTF_VALIDATOR_VERSION := 2.0.0-dev.3.10
GLTF_VALIDATOR_DIR := .tools/gltf-validator
GLTF_VALIDATOR_STAMP := $(GLTF_VALIDATOR_DIR)/.installed-$(GLTF_VALIDATOR_VERSION)

.PHONY: gltf-validator
gltf-validator: $(GLTF_VALIDATOR_STAMP)

$(GLTF_VALIDATOR_STAMP):
	rm -rf $(GLTF_VALIDATOR_DIR)
	mkdir -p $(GLTF_VALIDATOR_DIR)
	npm install --silent --no-audit --no-fund --save-exact --prefix $(GLTF_VALIDATOR_DIR) gltf-validator@$(GLTF_VALIDATOR_VERSION)
	touch $@
