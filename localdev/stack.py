"""`make stack`: the stack `sam build` wrote (.aws-sam/build/template.yaml) deployed into LocalStack community on this
machine, until Ctrl-C; scripts/stack.py is its command line, the e2e test (tests/e2e/test_stack.py) uses the rest.

    .venv/bin/python scripts/stack.py [--port 4599] [--stack-name midas-depth] [Parameter=Value ...]

LocalStack runs as a host process from its Python package (localdev/localstack.py makes .venv-localstack), with the
repository's LocalStack plugin (localstack-plugin/, installed here into that venv) for what community lacks: image
functions, and the Lambda init where it cannot be downloaded. Each run is separate from any other: its own port, a
fresh state directory (FILESYSTEM_ROOT), and Lambda containers named ``midas-stack-<run id>-lambda-...``. The stack
is created through the CloudFormation API (``sam deploy`` needs ECR, which community lacks) with a public function
URL, since LocalStack community has no HTTP API; each function then gets the reserved concurrency the template gives
it, which LocalStack's CloudFormation leaves out (its Lambda enforces it once set). Ctrl-C (or SIGTERM) deletes the
stack, stops LocalStack, removes the run's containers and its state directory.

The function containers reach LocalStack on the address of Docker's default bridge (docker0), where LocalStack also
listens; nothing else is exposed beyond 127.0.0.1. docs/local-aws.md#the-stack-in-localstack
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localdev import localstack as launcher
from localdev.lambda_container import docker, engine_error
from localdev.localstack import CREDENTIALS, REGION

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "localstack-plugin"
BUILT_TEMPLATE = Path(".aws-sam") / "build" / "template.yaml"
DEFAULT_PORT = 4599
STACK_NAME = "midas-depth"
# LocalStack community has no HTTP API (API Gateway v2): the function URL carries the same payload format 2.0. A
# public URL needs the concurrency cap (the template's Rules), which ReservedConcurrency's default gives.
PARAMETERS = {"EnableFunctionUrl": "true", "FunctionUrlAuthType": "NONE"}
DEPLOY_SECONDS = 300
# CloudFormation takes at most 51 200 bytes of template in the request itself (TemplateBody), which the built template
# passes; a larger one comes from S3 (TemplateURL), as `sam deploy` sends it (samconfig.toml's resolve_s3).
TEMPLATE_BUCKET = "midas-stack-templates"


def interface_address(name: str) -> str:
    """The IPv4 address of a network interface (SIOCGIFADDR): docker0's is where containers reach this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
    return socket.inet_ntoa(packed[20:24])


def localstack_venv() -> Path:
    """LocalStack's venv (:func:`localdev.localstack.install`, with its pins), with this repository's plugin
    installed."""
    venv = launcher.install()
    digest = hashlib.sha256()
    for path in sorted(p for p in PLUGIN.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(PLUGIN).as_posix().encode() + b"\0" + path.read_bytes())
    stamp = venv / f".installed-midas-localstack-{digest.hexdigest()[:16]}"
    if not stamp.exists():
        for old in venv.glob(".installed-midas-localstack-*"):
            old.unlink()
        with tempfile.TemporaryDirectory() as build:  # built from a copy: the checkout gets no build leftovers
            source = shutil.copytree(PLUGIN, Path(build) / "plugin", ignore=shutil.ignore_patterns("__pycache__"))
            # LocalStack's venv has setuptools: no build isolation, no download
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
            subprocess.run([*pip, "--force-reinstall", str(source)], check=True)
        stamp.touch()
    return venv


def client(endpoint: str, service: str) -> Any:
    """A boto3 client for LocalStack at ``endpoint`` (its test credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"mode": "standard"}),
    )


class LocalStack(launcher.LocalStack):
    """The launcher's LocalStack for one stack run: every service, also on ``gateway`` (docker0's address, where
    the function containers reach it), its Lambda containers named ``<name>-lambda-...`` and removed at stop."""

    def __init__(self, venv: Path, port: int = DEFAULT_PORT, gateway: str | None = None) -> None:
        self.gateway = gateway or interface_address("docker0")
        super().__init__(venv, port, also_on=(self.gateway,), name=f"midas-stack-{secrets.token_hex(4)}")
        self.settings = {
            # HOSTNAME_FROM_LAMBDA: the address LocalStack gives the function containers, as AWS_ENDPOINT_URL and
            # for its init
            "HOSTNAME_FROM_LAMBDA": self.gateway,
            "LAMBDA_DOCKER_NETWORK": "bridge",
            # The host in the URLs LocalStack hands out: function URLs become <id>.lambda-url.<region>.localhost:<port>,
            # names that curl and browsers resolve to this machine without DNS.
            "LOCALSTACK_HOST": f"localhost:{port}",
            "MAIN_CONTAINER_NAME": self.name,  # Lambda containers: <name>-lambda-<function>-<id>
            "CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES": "1",  # the HTTP API (Pro-only) becomes a placeholder
        }

    def containers(self) -> list[str]:
        """This run's Lambda containers, running or not."""
        names = docker("ps", "--all", "--format", "{{.Names}}").stdout.split()
        return [name for name in names if name.startswith(f"{self.name}-lambda-")]

    def stop(self, keep_state: bool = False) -> list[str]:
        """Stop LocalStack, remove this run's containers and state; the containers removed."""
        super().stop(keep_state)
        # LocalStack leaves its Lambda containers running when it stops
        removed = self.containers()
        for name in removed:
            docker("rm", "--force", name, check=False)
        return removed


def upload_template(endpoint: str, name: str, template: str) -> str:
    """The stack's template put in LocalStack's own S3 (a bucket of its own, made once per run); its URL."""
    s3 = client(endpoint, "s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=TEMPLATE_BUCKET)
    key = f"{name}/template.yaml"
    s3.put_object(Bucket=TEMPLATE_BUCKET, Key=key, Body=template.encode())
    return f"{endpoint}/{TEMPLATE_BUCKET}/{key}"


def deploy(cloudformation: Any, name: str, template: str, parameters: dict[str, str]) -> dict[str, str]:
    """Create the stack from ``template`` (through S3, whatever its size) and wait for it, then give its functions
    their pools; its outputs. A failed creation raises with the resources' reasons."""
    cloudformation.create_stack(
        StackName=name,
        TemplateURL=upload_template(cloudformation.meta.endpoint_url, name, template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = _settled(cloudformation, name)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
        failed = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if "FAILED" in e["ResourceStatus"]
        ]
        raise RuntimeError(f"stack {name} ended {stack['StackStatus']}: " + "; ".join(failed))
    reserve_concurrency(cloudformation, name, template, parameters)
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def reserve_concurrency(cloudformation: Any, name: str, template: str, parameters: dict[str, str]) -> dict[str, int]:
    """Each function's ReservedConcurrentExecutions as the template resolves it under ``parameters``, set through the
    Lambda API (LocalStack's CloudFormation does not apply it); function name -> executions."""
    import yaml

    body = yaml.safe_load(template)  # what sam build writes: plain YAML, intrinsic functions in their long form
    values = {key: str(spec.get("Default", "")) for key, spec in body.get("Parameters", {}).items()} | parameters
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    }
    lambda_ = client(cloudformation.meta.endpoint_url, "lambda")
    reserved = {}
    for logical_id, resource in body["Resources"].items():
        if not resource["Type"].endswith("::Function") or logical_id not in physical:
            continue
        setting = resource.get("Properties", {}).get("ReservedConcurrentExecutions")
        executions = _resolve(setting, values, body.get("Conditions", {}))
        if executions is not None:
            function = physical[logical_id]
            lambda_.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=int(executions))
            reserved[function] = int(executions)
    return reserved


def _resolve(value: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> Any:
    """A template value under the given parameters, for the intrinsic functions a function's settings use here
    (anything else raises, so that a change to the template is noticed); None for AWS::NoValue."""
    if not isinstance(value, dict):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return None if argument == "AWS::NoValue" else parameters[argument]
    if function == "Condition":
        return _resolve(conditions[argument], parameters, conditions)
    if function == "Fn::If":
        condition, yes, no = argument
        return _resolve(yes if _resolve(conditions[condition], parameters, conditions) else no, parameters, conditions)
    if function == "Fn::Equals":
        left, right = (_resolve(item, parameters, conditions) for item in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        return not _resolve(argument[0], parameters, conditions)
    if function in ("Fn::And", "Fn::Or"):
        combine = all if function == "Fn::And" else any
        return combine(_resolve(item, parameters, conditions) for item in argument)
    raise ValueError(f"{function} is not resolved here")


def delete(cloudformation: Any, name: str) -> str:
    """Delete the stack and wait for it; its final status."""
    cloudformation.delete_stack(StackName=name)
    return _settled(cloudformation, name)["StackStatus"]


def _settled(cloudformation: Any, name: str) -> dict:
    deadline = time.monotonic() + DEPLOY_SECONDS
    while True:
        try:
            stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        except cloudformation.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return {"StackStatus": "DELETE_COMPLETE"}
            raise
        if not stack["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return stack
        time.sleep(1)


def try_it(endpoint: str, outputs: dict[str, str]) -> str:
    """What to run against the stack, with its names. The download waits for the heatmap made from *this* upload
    (its `source-etag` metadata is the upload's ETag), not any heatmap of the key, as docs/local-aws.md's recipe."""
    url = outputs["FunctionUrl"]
    key = f"{outputs['UploadPrefix']}photo.jpg"
    heatmap = f"{outputs['OutputPrefix']}{key}.png"
    aws = f"aws --endpoint-url {endpoint}"
    made_from = (
        f"{aws} s3api head-object --bucket {outputs['OutputBucketName']} --key {heatmap}"
        " --query 'Metadata.\"source-etag\"' --output text 2>/dev/null || true"
    )
    return "\n".join(
        [
            "Try it from another shell (photo.jpg: any JPEG; the heatmap appears a few seconds after the upload):",
            "  export " + " ".join(f"{k}={v}" for k, v in CREDENTIALS.items()),
            f"  etag=$({aws} s3api put-object --bucket {outputs['InputBucketName']} --key {key} --body photo.jpg"
            " --query ETag --output text | tr -d '\"')",
            f'  for attempt in $(seq 240); do made=$({made_from}); [ "$made" = "$etag" ] && break; sleep 0.5; done',
            f'  [ "$made" = "$etag" ] && {aws} s3 cp s3://{outputs["OutputBucketName"]}/{heatmap} photo-depth.png'
            f" || echo 'no heatmap of this upload after 2 minutes: see the failure records under"
            f" s3://{outputs['OutputBucketName']}/{outputs['OutputPrefix']}failures/'",
            f"  curl {url}health",
            f"  curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg -o depth.png {url}depth",
            f"  the upload page, in a browser on this machine: {url}",
        ]
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"LocalStack's port (default {DEFAULT_PORT})")
    parser.add_argument("--stack-name", default=STACK_NAME)
    parser.add_argument("parameters", nargs="*", metavar="Parameter=Value", help="template parameters")
    args = parser.parse_args(argv)
    for item in args.parameters:
        if "=" not in item:
            parser.error(f"a parameter is Name=Value, not {item!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    parameters = PARAMETERS | dict(item.split("=", 1) for item in args.parameters)
    problem = engine_error()
    if problem:
        print(f"stack: no Docker engine answers ({problem})", file=sys.stderr)
        return 2
    if not BUILT_TEMPLATE.is_file():
        print(f"stack: no {BUILT_TEMPLATE}: run sam build first (make stack does)", file=sys.stderr)
        return 2
    try:
        gateway = interface_address("docker0")
    except OSError:
        print(
            "stack: no docker0 interface (Docker's default bridge): the function containers could not reach LocalStack",
            file=sys.stderr,
        )
        return 2
    localstack = LocalStack(localstack_venv(), args.port, gateway)
    # Ctrl-C and SIGTERM clean up, even where this was started with SIGINT ignored (a shell's background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    created = False
    try:
        localstack.start()
        print(f"LocalStack on {localstack.endpoint} (pid {localstack.process.pid}, log {localstack.log})", flush=True)
        cloudformation = client(localstack.endpoint, "cloudformation")
        created = True
        outputs = deploy(cloudformation, args.stack_name, BUILT_TEMPLATE.read_text(), parameters)
        print(f"Stack {args.stack_name} created; its outputs:")
        for key, value in sorted(outputs.items()):
            print(f"  {key:26} {value}")
        print(try_it(localstack.endpoint, outputs))
        containers = f"{localstack.name}-lambda-*"
        print(
            f"Ready. Ctrl-C deletes the stack, stops LocalStack and removes its containers ({containers}).", flush=True
        )
        while localstack.process.poll() is None:
            time.sleep(1)
        code = localstack.process.returncode
        print(f"stack: LocalStack stopped by itself (exit code {code}):\n{localstack.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        print(f"stack: {exc}\n--- LocalStack's log, last lines\n{localstack.log_tail()}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if created and localstack.process and localstack.process.poll() is None:
            print(f"Deleting stack {args.stack_name} ...", flush=True)
            try:
                print(f"  {delete(cloudformation, args.stack_name)}", flush=True)
            except Exception as exc:
                print(f"stack: deleting {args.stack_name} failed: {exc}", file=sys.stderr)
        removed = localstack.stop()
        print(f"LocalStack stopped; containers removed: {', '.join(removed) or 'none left'}", flush=True)
