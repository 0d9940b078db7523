# The README's commands. PYTHON must be 3.11 for the local torch wheel (and matches the bake image).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint bake serve

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-bake.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Bake layer/model/ from the official release (or BAKE_CHECKPOINT=path for an air-gapped build).
bake: setup
	$(BIN)/python scripts/bake_weights.py $(if $(BAKE_CHECKPOINT),--checkpoint $(BAKE_CHECKPOINT)) $(if $(BAKE_SHA256),--sha256 $(BAKE_SHA256))

# The API on 127.0.0.1:8000 with an embedded S3 emulator; bakes layer/model/ first if missing.
serve: setup
	$(BIN)/python scripts/serve_local.py

# ---------------------------------------------------------------------------------------------- image & SAM
# .venv-runtime: what the Lambda image installs, requirements.txt only (no torch), on Python 3.12 like the base
#   image, plus awslambdaric (the base image's runtime client); tests/test_image_runtime.py runs the entry in it.
# .venv-tools: aws-sam-cli + cfn-lint (+ dockerfile, Docker's own Dockerfile parser, for the tests), apart from
#   .venv because aws-sam-cli pins boto3 to another version.
RUNTIME_VENV ?= .venv-runtime
TOOLS_VENV ?= .venv-tools
AWSLAMBDARIC_VERSION := 4.2.2
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
DOCKERFILE_PARSER_VERSION := 3.4.0
ifndef PYTHON_RUNTIME
PYTHON_RUNTIME := $(or $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' 2>/dev/null && break; done),$(PYTHON))
endif
RUNTIME_STAMP := $(RUNTIME_VENV)/.installed-awslambdaric-$(AWSLAMBDARIC_VERSION)
TOOLS_STAMP := $(TOOLS_VENV)/.installed-sam-$(SAM_CLI_VERSION)-cfn-lint-$(CFN_LINT_VERSION)-dockerfile-$(DOCKERFILE_PARSER_VERSION)
SAM := SAM_CLI_TELEMETRY=0 $(TOOLS_VENV)/bin/sam

.PHONY: runtime-venv tools-venv validate invoke-s3

setup: $(RUNTIME_STAMP) $(TOOLS_STAMP)
runtime-venv: $(RUNTIME_STAMP)
tools-venv: $(TOOLS_STAMP)

$(RUNTIME_STAMP): requirements.txt
	rm -rf $(RUNTIME_VENV)
	$(PYTHON_RUNTIME) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install --quiet -r requirements.txt
	$(RUNTIME_VENV)/bin/pip install --quiet awslambdaric==$(AWSLAMBDARIC_VERSION)
	touch $@

$(TOOLS_STAMP):
	rm -rf $(TOOLS_VENV)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION) \
	  dockerfile==$(DOCKERFILE_PARSER_VERSION)
	touch $@

# Offline template checks (no credentials, no network): what CI runs through tests/test_template.py.
validate: $(TOOLS_STAMP)
	$(TOOLS_VENV)/bin/cfn-lint infra/template.yaml
	$(SAM) validate --lint --region us-east-1

# Upload IMAGE to the emulator's input bucket and run the function on the S3 event (AWS_ENDPOINT_URL, e.g. a
# running LocalStack, or an embedded moto server when unset). make invoke-s3 IMAGE=photo.jpg [OUT=dir]
invoke-s3: setup
	$(BIN)/python scripts/local_s3_invoke.py $(IMAGE) $(if $(OUT),--download $(OUT))
