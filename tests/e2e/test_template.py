"""infra/template.yaml, samconfig.toml, the image's build context and events/, checked offline with the real tools.

cfn-lint and ``sam validate --lint`` must pass without credentials; the SAM translator (aws-sam-translator, what
CloudFormation's transform runs) turns the template into the resources that would be deployed, and the tests read
those: least-privilege IAM, the S3 trigger's filters against the handler's image extensions, failure handling, the
HTTP routes against the FastAPI app, the access logs, the template's Rules (evaluated here for every parameter
combination that matters). The build context is computed by docker-py (what ``sam build`` sends). checkov
(``make checkov``) must find nothing but the findings docs/hardening.md accepts; requirements.lock must be what
``make lock`` makes from requirements.txt. The tools live in .venv-tools (``make tools-venv``; aws-sam-cli pins a
boto3 other than requirements.txt's), .venv-checkov and .venv-lock.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from handler.config import Settings
from handler.imaging import IMAGE_EXTENSIONS
from handler.routes.pages import VENDOR_PATH
from support import ROOT

TEMPLATE = ROOT / "infra" / "template.yaml"
DOCKERFILE = ROOT / "layer" / "Dockerfile"
EVENTS = ROOT / "events"
# Where the deploy/invoke/local sections live.
DOCS = [ROOT / "README.md"]
TOOLS = ROOT / ".venv-tools" / "bin"
REQUIREMENTS = ROOT / "requirements.txt"
LOCK = ROOT / "requirements.lock"
HARDENING = ROOT / "docs" / "hardening.md"

# Runs in .venv-tools: the template as SAM translates it, and the docker build context of layer/Dockerfile.
_TOOLS_PROBE = r"""
import json, os, sys
from docker.utils.build import exclude_paths
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

class NoManagedPolicies:  # the functions name no AWS managed policies (SAM Policies); nothing to look up in IAM
    def load(self):
        return {}

root, template_path = sys.argv[1], sys.argv[2]
raw = yaml_parse(open(template_path).read())
template = yaml_parse(open(template_path).read())
for resource in template["Resources"].values():  # what `sam build` fills in after pushing the image
    if resource.get("Properties", {}).get("PackageType") == "Image":
        resource["Properties"]["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/midas-depth:latest"
translated = transform(template, {}, NoManagedPolicies())

function = raw["Resources"]["ApiFunction"]["Metadata"]  # UploadFunction's is the same
context_dir = os.path.normpath(os.path.join(os.path.dirname(template_path), function["DockerContext"]))
ignore_file = os.path.join(context_dir, ".dockerignore")
patterns = []
if os.path.exists(ignore_file):  # read as docker-py's build() reads it
    patterns = [l.strip() for l in open(ignore_file).read().splitlines() if l.strip() and l.strip()[0] != "#"]
context = sorted(exclude_paths(context_dir, patterns, dockerfile=function["Dockerfile"]))
print(json.dumps({"raw": raw, "translated": translated, "context_dir": context_dir, "context": context}))
"""


@pytest.fixture(scope="session")
def tools() -> Path:
    """.venv-tools/bin, made (or brought up to date) by the Makefile's own rule."""
    done = subprocess.run(["make", "-s", "tools-venv"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"make tools-venv failed:\n{done.stdout}\n{done.stderr}"
    return TOOLS


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """No AWS credentials or config at all: the checks must not need an account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        SAM_CLI_TELEMETRY="0",
    )
    return env


@pytest.fixture(scope="session")
def probe(tools, tmp_path_factory) -> dict:
    env = _offline_env(tmp_path_factory.mktemp("home"))
    env["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator needs a region for ARNs; no call is made
    done = subprocess.run(
        [tools / "python", "-c", _TOOLS_PROBE, str(ROOT), str(TEMPLATE)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def resources(probe) -> dict:
    return probe["translated"]["Resources"]


@pytest.fixture(scope="session")
def parameters(probe) -> dict:
    return probe["raw"]["Parameters"]


def branches(value):
    """Both sides of every Fn::If (NoValue dropped): what the template can produce under some parameters."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        return [b for side in (yes, no) for b in branches(side)]
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


FUNCTIONS = ("ApiFunction", "UploadFunction")


def attached_policies(resources, role: str) -> list[str]:
    """The managed policies a role attaches: only this stack's own (``!Ref`` to an AWS::IAM::ManagedPolicy of the
    template), never an AWS managed policy, whose grants the template does not show."""
    attached = []
    for arn in resources[role]["Properties"].get("ManagedPolicyArns", []):
        assert set(arn) == {"Ref"}, f"{role} attaches {arn}: only this stack's own managed policies"
        assert resources[arn["Ref"]]["Type"] == "AWS::IAM::ManagedPolicy"
        attached.append(arn["Ref"])
    return attached


def policy_statements(document: dict) -> list[dict]:
    return [branch for statement in document["Statement"] for branch in branches(statement)]


def statements(resources, role: str) -> list[dict]:
    """Every statement a function's role (``ApiFunctionRole``, ``UploadFunctionRole``) grants, every Fn::If branch:
    its inline policies' and those of the managed policies it attaches."""
    props = resources[role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in props["Policies"]]
    documents += [resources[name]["Properties"]["PolicyDocument"] for name in attached_policies(resources, role)]
    return [statement for document in documents for statement in policy_statements(document)]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def bucket_name(resources, logical_id: str) -> str:
    name = resources[logical_id]["Properties"]["BucketName"]
    assert set(name) == {"Fn::Sub"} and isinstance(name["Fn::Sub"], str), "bucket names are plain !Sub strings"
    return name["Fn::Sub"]


# ------------------------------------------------------------------------------------------------ the tools


def test_cfn_lint_passes(tools, tmp_path):
    done = subprocess.run(
        [tools / "cfn-lint", "--include-checks", "I", "--", str(TEMPLATE.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_offline_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_sam_validate_lint_passes_offline(tools, tmp_path):
    # As CI and the README run it: from the repository root, the template found through samconfig.toml.
    done = subprocess.run(
        [tools / "sam", "validate", "--lint", "--region", "us-east-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_offline_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{TEMPLATE} is a valid SAM Template" in done.stdout


# ------------------------------------------------------------------------------------------------ function


def test_functions_are_the_image_built_from_layer_dockerfile(probe, resources, parameters):
    for name in FUNCTIONS:
        assert resources[name]["Type"] == "AWS::Lambda::Function"
        assert resources[name]["Properties"]["PackageType"] == "Image"
    # the same build Metadata, so that sam build builds one image for both (it groups functions by it)
    api, upload = (probe["raw"]["Resources"][name]["Metadata"] for name in FUNCTIONS)
    assert api == upload
    metadata = api
    assert Path(probe["context_dir"]) == ROOT
    assert (ROOT / metadata["Dockerfile"]).resolve() == DOCKERFILE
    build_args = set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), re.MULTILINE))
    assert set(metadata["DockerBuildArgs"]) <= build_args, "every DockerBuildArgs key is an ARG of the Dockerfile"
    # sam build --parameter-overrides ModelSource=prebaked switches the build mode without editing the template
    assert metadata["DockerBuildArgs"]["MODEL_SOURCE"] == {"Ref": "ModelSource"}
    assert set(parameters["ModelSource"]["AllowedValues"]) == {"bake", "prebaked"}
    assert parameters["ModelSource"]["Default"] == "bake"
    # sam build --parameter-overrides LambdaBaseImageDigest=sha256:... pins the base image; empty = its tag
    assert metadata["DockerBuildArgs"]["LAMBDA_BASE_DIGEST"] == {"Ref": "LambdaBaseImageDigest"}
    digest = parameters["LambdaBaseImageDigest"]
    assert digest["Default"] == "" and re.fullmatch(digest["AllowedPattern"], "")
    assert re.fullmatch(digest["AllowedPattern"], "sha256:" + "0123456789abcdef" * 4)
    for wrong in ("3.12", "sha256:abc", "@sha256:" + "0" * 64, "sha256:" + "A" * 64):
        assert not re.fullmatch(digest["AllowedPattern"], wrong), wrong

    for name, concurrency in zip(FUNCTIONS, ("ReservedConcurrency", "UploadReservedConcurrency"), strict=True):
        props = resources[name]["Properties"]
        assert props["Architectures"] == [{"Ref": "Architecture"}]
        assert branches(props["ReservedConcurrentExecutions"]) == [{"Ref": concurrency}]
        assert props["LoggingConfig"]["LogGroup"] == {"Ref": f"{name}LogGroup"}
        assert resources[f"{name}LogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
        assert props["Role"] == {"Fn::GetAtt": [f"{name}Role", "Arn"]}
    assert set(parameters["Architecture"]["AllowedValues"]) == {"x86_64", "arm64"}
    for name in ("ReservedConcurrency", "UploadReservedConcurrency", "LogRetentionInDays"):
        assert "Default" in parameters[name] and parameters[name]["Description"]


# Each function's memory and timeout, from parameters of its own: the API function answers requests that the HTTP API
# waits for at most 30 s; the upload function takes queue batches and 50 MP photos, which may need minutes and more
# memory, without the API's pool paying for either.
SIZING = {"ApiFunction": ("MemorySize", "Timeout"), "UploadFunction": ("UploadMemorySize", "UploadTimeout")}
HTTP_API_MAX_WAIT_SECONDS = 30  # API Gateway's HTTP API integration timeout, at most 30 s
LARGE_PHOTO_SECONDS = 5  # docs/scaling.md's planning figure: a 50 MP photo at 2048 MB, with its S3 transfers


def test_each_function_has_its_own_memory_and_timeout(probe, resources, parameters):
    assert not {"MemorySize", "Timeout"} & set(probe["raw"]["Globals"]["Function"])  # nothing shared
    for name, (memory, timeout) in SIZING.items():
        props = resources[name]["Properties"]
        assert (props["MemorySize"], props["Timeout"]) == ({"Ref": memory}, {"Ref": timeout}), name
        # Lambda's own bounds; the memory's floor holds a 50 MP photo (docs/deploy.md#memory)
        assert (parameters[memory]["MinValue"], parameters[memory]["MaxValue"]) == (1024, 10240)
        assert parameters[memory]["Default"] == 2048 and parameters[memory]["Description"]
        assert parameters[timeout]["MinValue"] >= 1 and parameters[timeout]["Description"]
    # the API function never needs longer than the HTTP APIs wait (a function URL could wait longer: it is optional)
    api_timeout, upload_timeout = parameters["Timeout"], parameters["UploadTimeout"]
    assert api_timeout["MaxValue"] == api_timeout["Default"] == HTTP_API_MAX_WAIT_SECONDS
    assert "30 s" in api_timeout["Description"] and "UploadTimeout" in api_timeout["Description"]
    http_routes = [
        event["Properties"]
        for event in probe["raw"]["Resources"]["ApiFunction"]["Properties"]["Events"].values()
        if event["Type"] == "HttpApi"
    ]
    assert http_routes and all(route.get("TimeoutInMillis", 30_000) >= 30_000 for route in http_routes)
    # the upload function: Lambda's 15 minutes at most, and by default a full queue batch of 50 MP photos twice over
    assert upload_timeout["MaxValue"] == 900
    batch = parameters["QueueBatchSize"]
    assert upload_timeout["Default"] >= 2 * batch["MaxValue"] * LARGE_PHOTO_SECONDS
    assert "UploadTimeout" in batch["Description"]
    # the queue hides a message being processed for six times the upload function's timeout (AWS's advice), and
    # Lambda refuses a queue whose visibility timeout is below it
    visibility = parameters["QueueVisibilityTimeout"]
    assert visibility["Default"] >= 6 * upload_timeout["Default"]
    assert set(re.findall(r"\w*Timeout\b", visibility["Description"])) == {"UploadTimeout"}
    # the upload function's environment does not name its own memory: Lambda gives it (AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
    assert "UPLOAD_FUNCTION_MEMORY_SIZE" not in resources["UploadFunction"]["Properties"]["Environment"]["Variables"]


def test_the_console_groups_each_functions_sizing_with_its_traffic(probe, parameters):
    interface = probe["raw"]["Metadata"]["AWS::CloudFormation::Interface"]
    groups = {group["Label"]["default"]: group["Parameters"] for group in interface["ParameterGroups"]}
    grouped = [name for names in groups.values() for name in names]
    assert sorted(grouped) == sorted(parameters), "every parameter in exactly one group"
    assert {"MemorySize", "Timeout", "ReservedConcurrency"} <= set(groups["HTTP"])
    assert {"UploadMemorySize", "UploadTimeout", "UploadReservedConcurrency"} <= set(groups["S3 uploads"])
    labels = {name: label["default"] for name, label in interface["ParameterLabels"].items()}
    assert set(labels) <= set(parameters)
    for name, (memory, timeout) in SIZING.items():
        who = "API" if name == "ApiFunction" else "upload"
        assert who in labels[memory] and "memory" in labels[memory] and "MB" in labels[memory]
        assert who in labels[timeout] and "timeout" in labels[timeout]


def test_the_read_access_to_the_uploads_is_written_once_for_both_roles(resources):
    """One managed policy holds the input bucket's statements, attached to both roles and to nothing else; no role
    grants anything in the input bucket inline."""
    input_arn = "arn:${AWS::Partition}:s3:::" + bucket_name(resources, "InputBucket")
    managed = {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    assert list(managed) == ["ReadUploadsPolicy"]
    policy = managed["ReadUploadsPolicy"]["Properties"]
    assert set(policy) == {"Description", "PolicyDocument"}  # no name (CAPABILITY_IAM), attached by the roles
    assert [s["Sid"] for s in policy_statements(policy["PolicyDocument"])] == ["ReadUploads", "ListUploads"]
    roles = [name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    attaching = {name for name in roles if "ReadUploadsPolicy" in attached_policies(resources, name)}
    assert attaching == {f"{name}Role" for name in FUNCTIONS}
    for role in roles:
        inline = [doc["PolicyDocument"] for doc in resources[role]["Properties"].get("Policies", [])]
        assert input_arn not in json.dumps(inline), f"{role} grants in the input bucket inline"


@pytest.mark.parametrize("role", [f"{name}Role" for name in FUNCTIONS])
def test_uploads_are_all_the_functions_may_read_of_the_input_bucket(resources, role):
    input_arn = "arn:${AWS::Partition}:s3:::" + bucket_name(resources, "InputBucket")
    granted = statements(resources, role)
    reads = [s for s in granted if "s3:GetObject" in as_list(s["Action"])]
    inputs = [s for s in reads if s["Resource"]["Fn::Sub"].startswith(input_arn + "/")]
    assert [s["Sid"] for s in granted if input_arn in json.dumps(s)] == ["ReadUploads", "ListUploads"]
    assert [s["Resource"] for s in inputs] == [{"Fn::Sub": input_arn + "/${UploadPrefix}*"}]
    (listing,) = [s for s in granted if s["Action"] == "s3:ListBucket" and s["Sid"] == "ListUploads"]
    assert listing["Resource"] == {"Fn::Sub": input_arn}  # the bucket itself; what it may list is the condition's
    assert set(listing["Condition"]) == {"StringLike"}
    (prefix,) = listing["Condition"]["StringLike"]["s3:prefix"]
    assert prefix["Fn::Sub"].endswith("*") and prefix["Fn::Sub"].removesuffix("*") == "${UploadPrefix}"


# ------------------------------------------------------------------------------------------------ spend


def evaluate(expression, values: dict[str, str]):
    """A CloudFormation Rules expression under the given parameter values (what CloudFormation checks on create)."""
    if isinstance(expression, str):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    if function == "Fn::Equals":
        left, right = (evaluate(a, values) for a in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        (inner,) = argument
        return not evaluate(inner, values)
    if function == "Fn::And":
        return all(evaluate(a, values) for a in argument)
    if function == "Fn::Or":
        return any(evaluate(a, values) for a in argument)
    if function == "Fn::Contains":  # of a CommaDelimitedList parameter, given as its comma-separated value
        listed, value = (evaluate(a, values) for a in argument)
        return value in [item.strip() for item in str(listed).split(",")]
    raise AssertionError(f"no evaluator for {function}")


def refused_by_rules(rules: dict, values: dict[str, str]) -> list[str]:
    """The AssertDescriptions of every assertion that fails under ``values`` (empty: the stack is accepted)."""
    refused = []
    for rule in rules.values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], values):
            continue
        refused += [a["AssertDescription"] for a in rule["Assertions"] if not evaluate(a["Assert"], values)]
    return refused


def test_concurrency_is_capped_by_default_and_a_public_function_url_needs_a_cap(probe, parameters):
    concurrency = parameters["ReservedConcurrency"]
    assert concurrency["Default"] == 10 and concurrency["MinValue"] == -1  # -1: no cap, chosen explicitly
    uploads = parameters["UploadReservedConcurrency"]
    assert uploads["Default"] == 10 and uploads["MinValue"] == -1
    # queue mode must fit under the upload function's cap: throttled batches would go back to the queue and count as
    # failed receives
    assert parameters["QueueMaxConcurrency"]["Default"] < uploads["Default"]
    assert "UploadReservedConcurrency" in parameters["QueueMaxConcurrency"]["Description"]

    rules = probe["raw"]["Rules"]
    assert probe["translated"]["Rules"] == rules  # the SAM transform hands the Rules to CloudFormation as they are
    # "no cap" means the same in the Rules as in the condition that leaves ReservedConcurrentExecutions out
    no_cap = {"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "-1"]}
    assert probe["raw"]["Conditions"]["HasReservedConcurrency"] == {"Fn::Not": [no_cap]}
    no_upload_cap = {"Fn::Equals": [{"Ref": "UploadReservedConcurrency"}, "-1"]}
    assert probe["raw"]["Conditions"]["HasUploadReservedConcurrency"] == {"Fn::Not": [no_upload_cap]}

    defaults = {name: str(p.get("Default", "")) for name, p in parameters.items()}
    for enabled in parameters["EnableFunctionUrl"]["AllowedValues"]:
        for auth in parameters["FunctionUrlAuthType"]["AllowedValues"]:
            for cap in ("-1", "1", "10", "1000"):
                values = defaults | {"EnableFunctionUrl": enabled, "FunctionUrlAuthType": auth}
                values["ReservedConcurrency"] = cap
                refused = refused_by_rules(rules, values)
                public_without_cap = enabled == "true" and auth == "NONE" and cap == "-1"
                assert bool(refused) == public_without_cap, (values, refused)
                for description in refused:  # names the way out
                    assert "ReservedConcurrency" in description and "AWS_IAM" in description
    assert refused_by_rules(rules, defaults) == []


# ------------------------------------------------------------------------------------------------ access logs


def test_http_api_access_logs_are_json_lines_in_a_log_group_with_retention(resources, parameters):
    stages = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    (stage,) = [s for s in stages if s["Properties"]["ApiId"] == {"Ref": "HttpApi"}]
    # the authenticated API (ApiAuth) logs the same lines to the same group
    assert all(s["Properties"]["AccessLogSettings"] == stage["Properties"]["AccessLogSettings"] for s in stages)
    settings = stage["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    log_format = settings["Format"]
    variables = re.findall(r"\$context\.[A-Za-z.]+", log_format)
    # every value is a quoted string holding one variable: API Gateway writes "-" for a missing one, and numbers
    # or quotes in a value must not break the line's JSON
    for sample in ("-", "123", 'a "quoted" value'):
        escaped = json.dumps(sample)[1:-1]
        line = json.loads(re.sub(r"\$context\.[A-Za-z.]+", lambda _, value=escaped: value, log_format))
        assert set(line.values()) == {sample}
    fields = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", log_format))
    assert len(variables) == len(fields) and len(set(variables)) == len(variables)
    for field in (
        "requestId",
        "requestTime",
        "sourceIp",
        "userAgent",
        "routeKey",
        "status",
        "responseLength",
        "responseLatency",
        "integrationLatency",
        "integrationErrorMessage",
    ):
        assert field in fields, field
    line = json.loads(log_format)
    assert line["sourceIp"] == "$context.identity.sourceIp" and line["status"] == "$context.status"
    group = resources["HttpApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert group["DeletionPolicy"] == "Delete"
    assert parameters["LogRetentionInDays"]["Default"] in parameters["LogRetentionInDays"]["AllowedValues"]


def test_function_environment_names_are_settings_the_handler_reads(resources, parameters):
    api, upload = (resources[name]["Properties"]["Environment"]["Variables"] for name in FUNCTIONS)
    # one configuration (the template's Globals), two pools; the API function also learns the upload function's
    # memory, the trigger's pixel caps it names to its callers (handler/routes/results.py)
    assert api == upload | {"UPLOAD_FUNCTION_MEMORY_SIZE": {"Ref": "UploadMemorySize"}}
    assert "upload_function_memory_size" in Settings.model_fields
    variables = upload
    ours = {name for name in variables if not name.startswith(("AWS_", "POWERTOOLS_"))}
    assert ours == {
        "OUTPUT_BUCKET",
        "OUTPUT_PREFIX",
        "UPLOAD_PREFIX",
        "ALLOWED_INPUT_BUCKETS",
        "WRITE_RAW_DEPTH",
        "WRITE_POINT_CLOUD",
        "MODEL_PRECISION",
    }
    assert {name.lower() for name in ours} <= set(Settings.model_fields)
    # one parameter picks the precision the image bakes and the function serves, with the setting's values
    accepted = set(Settings.model_fields["model_precision"].annotation.__args__)
    assert set(parameters["ModelPrecision"]["AllowedValues"]) == accepted
    assert parameters["ModelPrecision"]["Default"] == Settings.model_fields["model_precision"].default
    assert variables["MODEL_PRECISION"] == {"Ref": "ModelPrecision"}
    # the parameter offers exactly the values the setting accepts, and its default is the setting's
    accepted = set(Settings.model_fields["write_point_cloud"].annotation.__args__)
    assert set(parameters["WritePointCloud"]["AllowedValues"]) == accepted
    assert parameters["WritePointCloud"]["Default"] == Settings.model_fields["write_point_cloud"].default
    assert variables["WRITE_POINT_CLOUD"] == {"Ref": "WritePointCloud"}
    # the prefix the trigger accepts and /depth may read is the one the IAM read access is scoped to
    assert variables["UPLOAD_PREFIX"] == {"Ref": "UploadPrefix"}
    assert variables["OUTPUT_PREFIX"] == {"Ref": "OutputPrefix"}
    assert variables["OUTPUT_BUCKET"] == {"Fn::Sub": bucket_name(resources, "OutputBucket")}
    assert variables["ALLOWED_INPUT_BUCKETS"] == {"Fn::Sub": bucket_name(resources, "InputBucket")}
    # declared so that sam local --env-vars can set it, absent once deployed: AWS, or an emulator running the stack
    # (LocalStack), gives the function its endpoints, which a value here would override (tests/e2e/test_stack.py)
    assert variables["AWS_ENDPOINT_URL"] == {"Ref": "AWS::NoValue"}


# ------------------------------------------------------------------------------------------------ HTTP


def test_http_api_routes_are_the_apps_routes(resources, entry):
    paths = resources["HttpApi"]["Properties"]["Body"]["paths"]
    routed = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert routed == {
        ("GET", "/"),
        ("GET", "/health"),
        ("GET", "/docs"),
        ("GET", "/docs/{asset}"),
        ("GET", "/redoc"),
        ("GET", "/redoc/{asset}"),
        ("GET", f"{VENDOR_PATH}/{{asset}}"),  # the web page's three.js modules
        ("GET", "/openapi.json"),
        ("POST", "/predict"),
        ("POST", "/depth"),
    }
    served = {(m, r.path) for r in entry.http_app().routes for m in getattr(r, "methods", ())}
    assert routed <= served, routed - served
    for methods in paths.values():
        for operation in methods.values():
            assert operation["x-amazon-apigateway-integration"]["payloadFormatVersion"] == "2.0"
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission" and "Condition" not in r]
    assert sum(p["Properties"]["Principal"] == "apigateway.amazonaws.com" for p in permissions) == len(routed)


def test_api_event_payload_is_for_a_routed_path(resources):
    paths = resources["HttpApi"]["Properties"]["Body"]["paths"]
    for name in ("api-depth-png.json", "api-health.json"):
        event = json.loads((EVENTS / name).read_text())
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
        assert event["version"] == "2.0" and event["routeKey"] == f"{method} {path}"
        assert method.lower() in paths[path]


def test_api_url_output_and_optional_function_url(probe, resources, parameters):
    outputs = probe["translated"]["Outputs"]
    assert "${HttpApi}.execute-api" in outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["FunctionUrl"]["Condition"] == "HasFunctionUrl"
    url = resources["ApiFunctionUrl"]
    assert url["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": ["ApiFunction", "Arn"]}
    assert url["Condition"] == "HasFunctionUrl" and url["Properties"]["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    assert parameters["EnableFunctionUrl"]["Default"] == "false"
    assert parameters["FunctionUrlAuthType"]["Default"] == "AWS_IAM"
    public = [r for r in resources.values() if r.get("Condition") == "HasPublicFunctionUrl"]
    assert {p["Properties"]["Action"] for p in public} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    invoke = next(p for p in public if p["Properties"]["Action"] == "lambda:InvokeFunction")
    assert invoke["Properties"]["InvokedViaFunctionUrl"] is True  # not a public invoke of the function itself


def test_api_auth_adds_an_authenticated_api_and_leaves_the_public_one_as_it_is(probe, resources, parameters):
    assert parameters["ApiAuth"]["Default"] == "NONE" and parameters["ApiAuth"]["AllowedValues"] == [
        "NONE",
        "AWS_IAM",
        "JWT",
    ]
    public = resources["HttpApi"]["Properties"]["Body"]
    assert "securitySchemes" not in public.get("components", {})
    assert all("security" not in op for methods in public["paths"].values() for op in methods.values())

    added = {name: r for name, r in resources.items() if r.get("Condition") in ("HasAuthenticatedApi", "UseJwtAuth")}
    route = added["AuthenticatedApiRoute"]["Properties"]
    assert route["RouteKey"] == "$default" and route["ApiId"] == {"Ref": "AuthenticatedHttpApi"}
    assert route["AuthorizationType"] == {"Fn::If": ["UseJwtAuth", "JWT", "AWS_IAM"]}  # never NONE
    jwt = added["AuthenticatedApiJwtAuthorizer"]
    assert jwt["Condition"] == "UseJwtAuth" and jwt["Properties"]["JwtConfiguration"] == {
        "Issuer": {"Ref": "JwtIssuer"},
        "Audience": {"Ref": "JwtAudience"},
    }
    assert added["AuthenticatedApiIntegration"]["Properties"]["PayloadFormatVersion"] == "2.0"  # what carries iam/jwt
    invoke = added["AuthenticatedApiInvoke"]["Properties"]
    assert (
        invoke["Principal"] == "apigateway.amazonaws.com"
        and "${AuthenticatedHttpApi}/*" in invoke["SourceArn"]["Fn::Sub"]
    )
    assert probe["translated"]["Outputs"]["AuthenticatedApiUrl"]["Condition"] == "HasAuthenticatedApi"

    defaults = {name: str(p.get("Default", "")) for name, p in parameters.items()}
    rules = probe["raw"]["Rules"]
    for values, accepted in [
        ({"ApiAuth": "NONE"}, True),
        ({"ApiAuth": "AWS_IAM"}, True),
        ({"ApiAuth": "JWT"}, False),
        ({"ApiAuth": "JWT", "JwtIssuer": "https://issuer.example"}, False),
        ({"ApiAuth": "JWT", "JwtIssuer": "https://issuer.example", "JwtAudience": "app1,app2"}, True),
    ]:
        refused = refused_by_rules(rules, defaults | values)
        assert (refused == []) == accepted, (values, refused)
        assert all("JwtIssuer" in description for description in refused)


# ------------------------------------------------------------------------------------------------ S3


def test_buckets_are_separate_private_encrypted_and_named_with_sub(resources):
    names = {bucket_name(resources, b) for b in ("InputBucket", "OutputBucket")}
    assert len(names) == 2
    for logical_id in ("InputBucket", "OutputBucket"):
        props = resources[logical_id]["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert "NotificationConfiguration" not in resources["OutputBucket"]["Properties"]  # outputs never trigger


def resolve(value, values: dict[str, str]):
    """A template value with its !Ref and !Sub of parameters and pseudo parameters replaced by ``values``."""
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return values[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([\w:]+)\}", lambda m: values[m[1]], value["Fn::Sub"])
    if isinstance(value, dict):
        return {k: resolve(v, values) for k, v in value.items()}
    return value


def matches(pattern: dict, event: dict) -> bool:
    """EventBridge's matching of an event pattern (the operators the template may use): every field of the pattern
    must match (AND); a field's list matches when any of its matchers does (OR)."""
    for name, wanted in pattern.items():
        if name not in event:
            return False
        if isinstance(wanted, dict):
            if not isinstance(event[name], dict) or not matches(wanted, event[name]):
                return False
            continue
        if not any(_matcher(m, event[name]) for m in wanted):
            return False
    return True


def _matcher(matcher, value) -> bool:
    if not isinstance(matcher, dict):
        return matcher == value
    ((operator, argument),) = matcher.items()
    if not isinstance(value, str):
        return False
    if isinstance(argument, dict):
        ((modifier, argument),) = argument.items()
        assert modifier == "equals-ignore-case", modifier
        value, argument = value.lower(), argument.lower()
    if operator == "prefix":
        return value.startswith(argument)
    if operator == "suffix":
        return value.endswith(argument)
    if operator == "wildcard":
        return re.fullmatch(".*".join(map(re.escape, argument.split("*"))), value, re.DOTALL) is not None
    raise AssertionError(f"no evaluator for {operator}")


PSEUDO = {"AWS::AccountId": "123456789012", "AWS::Region": "eu-west-1", "AWS::Partition": "aws"}


def test_input_bucket_sends_its_events_to_eventbridge_and_the_output_bucket_nothing(resources):
    notification = resources["InputBucket"]["Properties"]["NotificationConfiguration"]
    assert notification == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}  # one switch, no S3 filter
    assert "NotificationConfiguration" not in resources["OutputBucket"]["Properties"]  # outputs never trigger
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 1, "the trigger is one rule"


@pytest.mark.parametrize(
    ("key", "delivered"),
    [
        ("uploads/a.jpg", True),
        ("uploads/a.JPG", True),
        ("uploads/a.Jpg", True),  # mixed case: S3 suffix filters missed it
        ("uploads/deep/er/ünï cødé.TiFF", True),
        ("uploads/a.txt", True),  # delivered, and skipped by the function before any S3 call (test_eventbridge.py)
        ("other/a.jpg", False),
        ("Uploads/a.jpg", False),  # keys are case-sensitive, like the function's IAM read access
        ("depth/uploads/a.jpg.png", False),
    ],
)
def test_the_upload_rule_matches_created_objects_under_the_upload_prefix(resources, parameters, key, delivered):
    rule = resources["UploadRule"]["Properties"]
    values = {name: str(p.get("Default", "")) for name, p in parameters.items()} | PSEUDO
    pattern = resolve(rule["EventPattern"], values)
    bucket = resolve({"Fn::Sub": bucket_name(resources, "InputBucket")}, values)
    event = json.loads(
        (ROOT / "tests/events/third_party/powertools/s3EventBridgeNotificationObjectCreatedEvent.json").read_text()
    )
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    assert matches(pattern, event) is delivered
    for other in ({"detail-type": "Object Deleted"}, {"source": "aws.s3-not"}):
        assert not matches(pattern, {**event, **other})
    elsewhere = json.loads(json.dumps(event))
    elsewhere["detail"]["bucket"]["name"] = resolve({"Fn::Sub": bucket_name(resources, "OutputBucket")}, values)
    assert not matches(pattern, elsewhere)  # the function's outputs never match


def test_every_image_extension_in_any_case_is_delivered_under_the_upload_prefix(resources, parameters):
    values = {name: str(p.get("Default", "")) for name, p in parameters.items()} | PSEUDO
    pattern = resolve(resources["UploadRule"]["Properties"]["EventPattern"], values)
    bucket = resolve({"Fn::Sub": bucket_name(resources, "InputBucket")}, values)
    for extension in IMAGE_EXTENSIONS:
        for spelled in (extension, extension.upper(), extension.title(), extension.swapcase().title().swapcase()):
            event = {
                "source": "aws.s3",
                "detail-type": "Object Created",
                "detail": {"bucket": {"name": bucket}, "object": {"key": f"uploads/photo{spelled}"}},
            }
            assert matches(pattern, event), spelled


def test_the_upload_rule_targets_the_function_or_the_ingest_queue_which_allow_only_it(resources):
    rule = resources["UploadRule"]
    condition, queued, direct = rule["Properties"]["Targets"]["Fn::If"]
    assert condition == "UseQueue"
    assert [t["Arn"] for t in queued] == [{"Fn::GetAtt": ["IngestQueue", "Arn"]}]
    assert [t["Arn"] for t in direct] == [{"Fn::GetAtt": ["UploadFunction", "Arn"]}]
    rule_arn = {"Fn::GetAtt": ["UploadRule", "Arn"]}
    permission = resources["UploadRuleInvokePermission"]
    assert permission["Condition"] == "UseDirect"
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert permission["Properties"]["SourceArn"] == rule_arn
    (statement,) = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn}}
    assert not [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "s3.amazonaws.com"
    ]


def test_upload_prefix_and_output_prefix_are_folders(parameters):
    for name, default in (("UploadPrefix", "uploads/"), ("OutputPrefix", "depth/")):
        param = parameters[name]
        assert param["Default"] == default and re.fullmatch(param["AllowedPattern"], default)
        assert not re.fullmatch(param["AllowedPattern"], "") and not re.fullmatch(param["AllowedPattern"], "/x/")


# ------------------------------------------------------------------------------------------------ IAM


def grants_of(resources, role: str) -> dict[str, set[str]]:
    """Resource (as JSON) -> the actions the role allows on it; only X-Ray's two actions on "*"."""
    grants: dict[str, set[str]] = {}
    for statement in statements(resources, role):
        assert statement["Effect"] == "Allow"
        if statement["Resource"] == "*":  # X-Ray's two actions have no resource-level permissions
            assert statement["Action"] == ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
            continue
        for resource in as_list(statement["Resource"]):
            key = json.dumps(resource, sort_keys=True)
            for action in as_list(statement["Action"]):
                assert "*" not in action, action
                grants.setdefault(key, set()).add(action)
    return grants


def sub(text: str) -> str:
    return json.dumps({"Fn::Sub": text}, sort_keys=True)


def getatt(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
WRITE = {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"}


def bucket_arn(resources, logical_id: str, suffix: str = "") -> str:
    return sub("arn:${AWS::Partition}:s3:::" + bucket_name(resources, logical_id) + suffix)


def read_uploads(resources) -> dict[str, set[str]]:
    """What both roles may do in the input bucket: read (and list) under UploadPrefix, nothing else."""
    return {
        bucket_arn(resources, "InputBucket", "/${UploadPrefix}*"): {"s3:GetObject"},
        bucket_arn(resources, "InputBucket"): {"s3:ListBucket"},
    }


def test_api_role_is_least_privilege(resources):
    """Read the uploads (S3 references), write its own results under <OutputPrefix>api/: no queue, no failure
    records, no other output."""
    assert grants_of(resources, "ApiFunctionRole") == {
        getatt("ApiFunctionLogGroup"): LOGS,
        **read_uploads(resources),
        bucket_arn(resources, "OutputBucket", "/${OutputPrefix}api/*"): WRITE,
    }
    conditioned = [s for s in statements(resources, "ApiFunctionRole") if "Condition" in s]
    assert [s["Condition"] for s in conditioned] == [{"StringLike": {"s3:prefix": [{"Fn::Sub": "${UploadPrefix}*"}]}}]


def test_upload_role_is_least_privilege(resources):
    assert grants_of(resources, "UploadFunctionRole") == {
        getatt("UploadFunctionLogGroup"): LOGS,
        **read_uploads(resources),
        bucket_arn(resources, "OutputBucket"): {"s3:ListBucket"},
        bucket_arn(resources, "OutputBucket", "/${OutputPrefix}*"): WRITE,
        getatt("AsyncFailureQueue"): {"sqs:SendMessage"},
        getatt("IngestQueue"): {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
    }
    # Conditions: only the listings have one, and it keeps each inside its prefix (outputs: so that the HEAD of a
    # result not made yet answers 404, not 403; uploads, from the shared policy).
    conditioned = [s for s in statements(resources, "UploadFunctionRole") if "Condition" in s]
    assert [s["Action"] for s in conditioned] == ["s3:ListBucket", "s3:ListBucket"]
    assert [s["Condition"] for s in conditioned] == [
        {"StringLike": {"s3:prefix": [{"Fn::Sub": "${OutputPrefix}*"}]}},
        {"StringLike": {"s3:prefix": [{"Fn::Sub": "${UploadPrefix}*"}]}},
    ]
    # No reference from the roles, their policies or the functions to the bucket resources: the names are strings (no
    # cycle).
    for logical_id in (*FUNCTIONS, *(f"{name}Role" for name in FUNCTIONS), "ReadUploadsPolicy"):
        text = json.dumps(resources[logical_id]["Properties"])
        assert '"InputBucket"' not in text and '"OutputBucket"' not in text


# ------------------------------------------------------------------------------------------------ isolation
# Public traffic cannot starve uploads: every way into the stack reaches one function, and each function has a pool
# of its own, so a flood of HTTP requests is throttled in the API's pool while uploads run in theirs.

HTTP_ENTRIES = {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Integration", "AWS::Lambda::Url"}
UPLOAD_ENTRIES = {"AWS::Events::Rule", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"}


def functions_named(value) -> set[str]:
    """The functions a resource names (Ref, GetAtt or ${...} of Fn::Sub), not their roles or log groups."""
    text = json.dumps(value)
    return {name for name in FUNCTIONS if re.search(rf"\b{name}\b", text)}


def test_each_way_in_reaches_one_function_with_a_pool_of_its_own(resources, parameters):
    reached: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::Lambda::Permission":
            public_url = "FunctionUrlAuthType" in props or props.get("InvokedViaFunctionUrl")
            principal = "url" if public_url else props["Principal"]
            way = {"apigateway.amazonaws.com": "http", "url": "http", "events.amazonaws.com": "uploads"}[principal]
        elif kind in HTTP_ENTRIES:
            way = "http"
        elif kind in UPLOAD_ENTRIES or logical_id == "BatchOperationsRole":
            way = "uploads"
        else:
            continue
        named = functions_named(props)
        assert len(named) <= 1, (logical_id, named)
        reached.setdefault(way, set()).update(named)
    assert reached == {"http": {"ApiFunction"}, "uploads": {"UploadFunction"}}
    # every HTTP route of the public API, the authenticated API's integration, the function URL and its public
    # permissions; the upload rule (direct mode), the ingest queue's mapping, the failure destination, backfills
    named = {n: functions_named(r.get("Properties", {})) for n, r in resources.items()}
    assert (
        named["UploadRule"] == named["IngestEventSourceMapping"] == named["BatchOperationsRole"] == {"UploadFunction"}
    )
    assert named["UploadFunctionAsyncConfig"] == {"UploadFunction"}
    assert named["HttpApi"] == named["AuthenticatedApiIntegration"] == named["ApiFunctionUrl"] == {"ApiFunction"}
    # two pools, from two parameters, both capped by default
    pools = [resources[name]["Properties"]["ReservedConcurrentExecutions"] for name in FUNCTIONS]
    assert [branches(pool) for pool in pools] == [
        [{"Ref": "ReservedConcurrency"}],
        [{"Ref": "UploadReservedConcurrency"}],
    ]
    assert all(parameters[p]["Default"] > 0 for p in ("ReservedConcurrency", "UploadReservedConcurrency"))
    # neither role can do the other's work: no queue or failure record for the API, no HTTP entry for uploads
    api_grants = json.dumps(statements(resources, "ApiFunctionRole"))
    assert "sqs:" not in api_grants and "failures/" not in api_grants and "${OutputPrefix}*" not in api_grants


# ------------------------------------------------------------------------------------------------ failures


def test_async_s3_invocations_have_bounded_retries_and_a_failure_queue(resources, parameters):
    config = resources["UploadFunctionAsyncConfig"]["Properties"]
    assert config["FunctionName"] == {"Ref": "UploadFunction"} and config["Qualifier"] == "$LATEST"
    assert config["MaximumRetryAttempts"] == {"Ref": "AsyncMaxRetryAttempts"}
    assert 0 <= parameters["AsyncMaxRetryAttempts"]["MaxValue"] <= 2
    assert config["MaximumEventAgeInSeconds"] == {"Ref": "AsyncMaxEventAgeSeconds"}
    assert parameters["AsyncMaxEventAgeSeconds"]["MaxValue"] <= 21600
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}
    assert resources["AsyncFailureQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600  # 14 days


def test_queue_mode_batches_with_partial_failures_and_a_dead_letter_queue(resources, parameters):
    mapping = resources["IngestEventSourceMapping"]
    assert mapping["Condition"] == "UseQueue"
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert props["FunctionName"] == {"Ref": "UploadFunction"}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == {"Ref": "QueueBatchSize"}
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "QueueMaxConcurrency"}
    redrive = resources["IngestQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "QueueMaxReceiveCount"}
    assert parameters["IngestMode"]["AllowedValues"] == ["direct", "queue"]


# ------------------------------------------------------------------------------------------------ image & config


def test_build_context_is_what_the_dockerfile_copies_and_nothing_else(probe):
    context = set(probe["context"])
    tracked = subprocess.run(["git", "ls-files", "handler", "bake"], cwd=ROOT, capture_output=True, text=True)
    for path in tracked.stdout.split():
        if "__pycache__" not in path:
            assert path in context, f"{path} is not sent to docker"
    needed = ("requirements.lock", "requirements-bake.txt", "layer/Dockerfile", "handler/static/index.html")
    for path in (*needed, "scripts/bake_weights.py"):
        assert path in context
    # of scripts/, the bake's command line alone; no local tooling, no tests
    assert [path for path in context if path.startswith("scripts/")] == ["scripts/bake_weights.py"]
    allowed = {"handler", "bake", "scripts", "layer", "requirements.txt", "requirements.lock", "requirements-bake.txt"}
    allowed.add(".dockerignore")
    for path in context:
        assert path.split("/", 1)[0] in allowed, path
        assert "__pycache__" not in path and not path.endswith(".pyc")
    for source in re.findall(r"^COPY (?!--from)(.+?) \S+$", DOCKERFILE.read_text(), re.MULTILINE):
        for item in source.split():
            assert item.rstrip("/") in context, f"COPY {item}: not in the build context"


def test_dockerfile_is_multi_stage_cpu_torch_bake_and_torch_free_runtime():
    text = DOCKERFILE.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "|| true" not in code and "exit 0" not in code
    # one base image for both stages: an air-gapped (prebaked) build needs no registry but the Lambda one. Its tag
    # by default (what a local stand-in answers to), its digest when LAMBDA_BASE_DIGEST is given.
    base = r"public\.ecr\.aws/lambda/python:3\.12\$\{LAMBDA_BASE_DIGEST:\+@\}\$\{LAMBDA_BASE_DIGEST\}"
    assert re.search(r"^ARG LAMBDA_BASE_DIGEST=$", code.split("\nFROM ")[0], re.MULTILINE)
    bake, runtime = re.split(rf"^FROM {base} AS runtime$", code, flags=re.MULTILINE)
    assert re.search(rf"^FROM {base} AS bake$", bake, re.MULTILINE)
    assert len(re.findall(r"^FROM ", code, re.MULTILINE)) == 2
    assert "https://download.pytorch.org/whl/cpu" in bake and "torch.version.cuda" in bake
    assert "scripts/bake_weights.py" in bake and "--output /model" in bake
    for arg in ("MODEL_SOURCE", "CHECKPOINT_URL", "CHECKPOINT_FILE", "CHECKPOINT_SHA256"):
        assert re.search(rf"^ARG {arg}=", bake, re.MULTILINE)
    installs = re.findall(r"pip install ([^&\n]+)", runtime)
    # the lock, every file checked against its sha256, wheels only (no build script of any package runs)
    assert installs == ["--require-hashes --only-binary=:all: -r ${LAMBDA_TASK_ROOT}/requirements.lock "], installs
    assert runtime.index("COPY requirements.lock") < runtime.index("COPY handler/")
    assert "MODEL_DIR=/opt/ml/model" in runtime and "COPY --from=bake /model/ ${MODEL_DIR}/" in runtime
    assert re.search(r"HOME=/tmp\b", runtime) and "XDG_CACHE_HOME=/tmp/" in runtime
    assert runtime.rstrip().endswith('CMD ["handler.entry.lambda_handler"]')


def test_samconfig_builds_validates_and_deploys_the_template():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    assert (ROOT / config["build"]["parameters"]["template_file"]).resolve() == TEMPLATE
    assert (ROOT / config["validate"]["parameters"]["template_file"]).resolve() == TEMPLATE
    deploy = config["deploy"]["parameters"]
    assert "template_file" not in deploy  # deploy must take the built template, which has the image URI
    assert deploy["capabilities"] == "CAPABILITY_IAM" and "RoleName" not in TEMPLATE.read_text()
    assert deploy["resolve_image_repos"] is True and deploy["resolve_s3"] is True
    assert config["global"]["parameters"]["stack_name"]
    # sam local invoke / start-api read the template sam build wrote (an image function needs its build), so a
    # missing build is reported as that file, not as a missing template.yml in the working directory
    for command in ("local_invoke", "local_start_api"):
        assert config[command]["parameters"]["template_file"] == ".aws-sam/build/template.yaml"


def test_local_env_vars_file_only_sets_variables_the_template_declares(resources):
    # sam local invoke --env-vars silently ignores variables the template does not declare.
    declared = set(resources["ApiFunction"]["Properties"]["Environment"]["Variables"])
    env_vars = json.loads((EVENTS / "env-localstack.json").read_text())
    assert set(env_vars) == {"Parameters"}  # SAM's key for what every function of the template gets
    assert set(env_vars["Parameters"]) <= declared
    assert env_vars["Parameters"]["AWS_ENDPOINT_URL"].startswith("http")


def test_every_event_file_the_docs_use_exists_and_every_event_file_is_documented():
    docs = "\n".join(p.read_text() for p in DOCS if p.is_file())
    used = set(re.findall(r"events/([\w.-]+\.json)", docs))
    present = {p.name for p in EVENTS.glob("*.json")}
    assert used and used <= present, used - present
    assert present <= used, f"undocumented: {present - used}"
    for name in present:
        json.loads((EVENTS / name).read_text())


# ------------------------------------------------------------------------------------------------ supply chain


def _name(requirement: str) -> str:
    """A requirement's project name, normalised as PyPI does (PEP 503), without extras."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~;\s]", requirement.strip(), maxsplit=1)[0]).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9._\-\[\]]+==[^\s;]+", line), f"{path.name}: not an exact pin: {line}"
            pins[_name(line)] = line.split("==", 1)[1]
    return pins


def _lock_entries(text: str) -> list[tuple[str, str, list[str], list[str]]]:
    """(name, version, hashes, what it is there for) for each requirement of a lock file."""
    entries = []
    for block in re.split(r"\n(?=\S)", text):
        if block.startswith("#") or not block.strip():
            continue
        head, *rest = block.split(" \\\n")
        name, version = re.fullmatch(r"([A-Za-z0-9._\-]+)==(\S+)(?: ; .+)?", head.strip()).groups()
        hashes = [h for part in rest for h in re.findall(r"--hash=sha256:([0-9a-f]{64})", part)]
        via = re.findall(r"#\s+(?:via\s+)?(-r \S+|[a-z0-9][\w.-]*)\s*$", block, re.MULTILINE)
        entries.append((_name(name), version, hashes, via))
    return entries


def test_lock_pins_every_requirement_at_its_version_with_hashes():
    wanted = _pins(REQUIREMENTS)
    text = LOCK.read_text()
    assert "make lock" in text.splitlines()[1], "the lock says how it is made"
    entries = _lock_entries(text)
    locked = {name: version for name, version, _, _ in entries}
    assert len(locked) == len(entries), "a project locked twice"
    for name, version in wanted.items():
        assert locked.get(name) == version, f"requirements.txt pins {name}=={version}, the lock {locked.get(name)}"
    top_level = {name for name, _, _, via in entries if "-r requirements.txt" in via}
    assert top_level == set(wanted), "the lock was made from another requirements.txt: run make lock"
    for name, _, hashes, via in entries:
        assert hashes, f"{name} has no --hash"
        assert via, f"{name}: the lock does not say what needs it"
    # every platform the function runs on (x86_64, arm64) has its wheels in the lock: the binary packages
    # list several files each
    for name in ("numpy", "onnxruntime", "pillow", "pydantic-core"):
        assert len(next(h for n, _, h, _ in entries if n == name)) >= 2, name


def test_make_lock_makes_this_lock(tmp_path):
    """``make lock`` (uv, pinned, with a fixed exclude-newer date) resolves requirements.txt to this very file."""
    out = tmp_path / "requirements.lock"
    done = subprocess.run(
        ["make", "-s", "lock", f"LOCK_FILE={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_text() == LOCK.read_text(), "requirements.lock is not what make lock makes: run make lock"


# ------------------------------------------------------------------------------------------------ checkov

# The template's optional resources (queue mode, a public function URL) are only scanned when their conditions
# hold; checkov resolves conditions from the parameters' defaults, so a copy with these defaults scans them too.
ALL_OPTIONS = {
    "IngestMode": "queue",
    "EnableFunctionUrl": '"true"',
    "FunctionUrlAuthType": "NONE",
    "EnableTracing": '"true"',
    "AlarmEmail": "ops@example.com",
    "ApiAuth": "JWT",
}


def _with_defaults(text: str, defaults: dict[str, str]) -> str:
    for name, value in defaults.items():
        pattern = rf"(^  {name}:\n(?:    .*\n)*?    Default: ).*$"
        text, count = re.subn(pattern, rf"\g<1>{value}", text, count=1, flags=re.MULTILINE)
        assert count == 1, name
    return text


@pytest.fixture(scope="session")
def checkov() -> Path:
    """``make checkov``: installs the pinned checkov in .venv-checkov and requires no finding but the accepted ones."""
    done = subprocess.run(["make", "-s", "checkov"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"make checkov failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    return ROOT / ".venv-checkov" / "bin" / "checkov"


def _scan(checkov: Path, framework: str, path: Path, tmp_path: Path) -> dict:
    done = subprocess.run(
        [checkov, "--compact", "--skip-download", "--output", "json", "--framework", framework, "--file", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_offline_env(tmp_path),
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return json.loads(done.stdout)


def test_checkov_finds_only_the_accepted_findings_and_the_docs_list_each(checkov, tmp_path):
    variant = tmp_path / "template-all-options.yaml"
    variant.write_text(_with_defaults(TEMPLATE.read_text(), ALL_OPTIONS))
    scans = [
        _scan(checkov, "cloudformation", TEMPLATE, tmp_path),
        _scan(checkov, "cloudformation", variant, tmp_path),
        _scan(checkov, "dockerfile", DOCKERFILE, tmp_path),
    ]
    skipped: dict[str, set[str]] = {}
    for scan in scans:
        assert scan["summary"]["failed"] == 0 and scan["summary"]["parsing_errors"] == 0, scan["results"]
        assert scan["summary"]["passed"] > 0
        for check in scan["results"]["skipped_checks"]:
            comment = check["check_result"].get("suppress_comment", "").strip()
            assert len(comment) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"
            skipped.setdefault(check["check_id"], set()).add(check["resource"])
    # the variant scans what the defaults leave out: the ingest queues, the function URL
    assert {"AWS::SQS::Queue.IngestQueue", "AWS::Lambda::Url.ApiFunctionUrl"} <= set().union(*skipped.values())

    section = HARDENING.read_text().split("\n## checkov", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(CKV\w+)` \|", section, re.MULTILINE)
    assert len(documented) == len(set(documented))
    assert set(documented) == set(skipped), "docs/hardening.md#checkov lists exactly the accepted findings"
    # the version the doc names is the one the Makefile pins and the scans ran
    (version,) = re.findall(r"^CHECKOV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert {scan["summary"]["checkov_version"] for scan in scans} == {version}
    assert f") {version} checks" in section


# ------------------------------------------------------------------------------------------------ backfill & operations


def test_batch_operations_role_invokes_the_function_reads_manifests_and_writes_reports(resources):
    role = resources["BatchOperationsRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    grants = {
        s["Sid"]: (sorted(as_list(s["Action"])), s["Resource"])
        for policy in role["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    }
    assert grants == {
        "InvokeUploadFunction": (["lambda:InvokeFunction"], {"Fn::GetAtt": ["UploadFunction", "Arn"]}),
        "ReadManifests": (
            ["s3:GetObject", "s3:GetObjectVersion"],
            {"Fn::Sub": "${OutputBucket.Arn}/batch-operations/*"},
        ),
        "WriteReports": (["s3:PutObject"], {"Fn::Sub": "${OutputBucket.Arn}/batch-operations/reports/*"}),
        "LocateBucket": (["s3:GetBucketLocation"], {"Fn::GetAtt": ["OutputBucket", "Arn"]}),
    }
    # the function itself has no access there: its outputs are under OutputPrefix, which must not be batch-operations/
    rules = resources["OutputBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {
        "Id": "expire-batch-operations-files",
        "Status": "Enabled",
        "Prefix": "batch-operations/",
        "ExpirationInDays": 30,
    } in rules


def test_alarms_go_to_one_topic_with_an_optional_email(resources, parameters):
    alarms = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    per_function = {f"{who}{what}Alarm" for who in ("Api", "Upload") for what in ("Errors", "Throttles", "Duration")}
    assert set(alarms) == per_function | {"AsyncFailuresAlarm", "DeadLetterAlarm"}
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}] and props["TreatMissingData"] == "notBreaching"
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarms["DeadLetterAlarm"]["Condition"] == "UseQueue"
    for who, function in zip(("Api", "Upload"), FUNCTIONS, strict=True):
        dimensions = [{"Name": "FunctionName", "Value": {"Ref": function}}]
        for metric in ("Errors", "Throttles"):
            props = alarms[f"{who}{metric}Alarm"]["Properties"]
            assert (props["MetricName"], props["Statistic"], props["Threshold"]) == (metric, "Sum", 0)
            assert props["Dimensions"] == dimensions
        stat, _ = alarms[f"{who}DurationAlarm"]["Properties"]["Metrics"]
        assert stat["MetricStat"]["Metric"]["Dimensions"] == dimensions
    for name, queue in (("AsyncFailuresAlarm", "AsyncFailureQueue"), ("DeadLetterAlarm", "IngestDeadLetterQueue")):
        props = alarms[name]["Properties"]
        assert props["MetricName"] == "ApproximateNumberOfMessagesVisible" and props["Threshold"] == 0
        assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    # p95 Duration (ms) / the function's own Timeout (s) > 800  <=>  p95 > 80% of its timeout
    for who, (_, timeout_parameter) in zip(("Api", "Upload"), SIZING.values(), strict=True):
        duration = alarms[f"{who}DurationAlarm"]["Properties"]
        stat, expression = duration["Metrics"]
        assert stat["MetricStat"]["Stat"] == "p95" and stat["MetricStat"]["Metric"]["MetricName"] == "Duration"
        assert expression["Expression"] == {"Fn::Sub": f"d / ${{{timeout_parameter}}}"}
        assert duration["Threshold"] == 800 and timeout_parameter in expression["Label"]
        for timeout, p95_ms, breaching in ((30, 24_001, True), (30, 23_999, False), (900, 720_500, True)):
            assert (p95_ms / timeout > duration["Threshold"]) is breaching
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail" and subscription["Properties"]["Protocol"] == "email"
    email = parameters["AlarmEmail"]
    assert email["Default"] == "" and re.fullmatch(email["AllowedPattern"], "")
    assert re.fullmatch(email["AllowedPattern"], "ops@example.com")
    assert not re.fullmatch(email["AllowedPattern"], "ops@example") and not re.fullmatch(
        email["AllowedPattern"], "a b@c.d"
    )


def test_dashboard_is_valid_json_reading_the_functions_own_namespace(resources, parameters):
    body, variables = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    values = {name: str(p.get("Default", "")) for name, p in parameters.items()} | PSEUDO
    values |= {
        "AWS::StackName": "midas",
        "ApiFunction": "api",
        "UploadFunction": "uploads",
        "AsyncFailureQueue.QueueName": "q",
        "ApiTimeoutMs": "30000",
        "UploadTimeoutMs": "120000",
    }
    # each function's timeout drawn on the duration widget, from its own parameter
    assert variables == {
        "ApiTimeoutMs": {"Fn::Sub": "${Timeout}000"},
        "UploadTimeoutMs": {"Fn::Sub": "${UploadTimeout}000"},
    }
    dashboard = json.loads(re.sub(r"\$\{([\w:.]+)\}", lambda m: values[m[1]], body))
    (durations,) = [w["properties"] for w in dashboard["widgets"] if w["properties"]["title"].startswith("Duration")]
    lines = {line["label"]: line["value"] for line in durations["annotations"]["horizontal"]}
    assert lines == {"API timeout": 30000, "upload timeout": 120000}
    rows = [w["properties"]["metrics"] for w in dashboard["widgets"]]
    names = {m[1] for metrics in rows if metrics[0][0] == "midas" for m in metrics}  # "." repeats the row above
    assert {"ImagesWritten", "ImagesUnchanged", "ImagesFailed", "LatencyTotal", "LatencyInference"} <= names
    lambda_rows = [m for metrics in rows if metrics[0][0] == "AWS/Lambda" for m in metrics]
    assert {m[3] for m in lambda_rows if len(m) > 3 and m[3] != "."} == {"api", "uploads"}  # both functions
    env = resources["UploadFunction"]["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "AWS::StackName"}  # the namespace the dashboard reads


def test_tracing_is_a_parameter(resources, parameters):
    assert parameters["EnableTracing"]["Default"] == "false"
    for name in FUNCTIONS:
        mode = resources[name]["Properties"]["TracingConfig"]["Mode"]
        assert mode == {"Fn::If": ["HasTracing", "Active", "PassThrough"]}
        (traces,) = [s for s in statements(resources, f"{name}Role") if s.get("Sid") == "WriteTraces"]
        assert traces["Resource"] == "*"  # X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level scope
