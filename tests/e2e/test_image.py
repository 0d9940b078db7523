"""The real container image: ``docker build -f layer/Dockerfile``, run as Lambda runs it, driven by SAM.

- The image is built from the repo's tracked files plus the suite's baked model (localdev/lambda_container.py) on
  the Lambda base image (the real one where it can be pulled, else the local stand-in: ``make base-image``).
- It runs under the base image's Runtime Interface Emulator with a read-only root filesystem, ``/tmp`` as tmpfs,
  a non-root user and the template's MemorySize, against an S3 emulator container on a Docker network of its own;
  S3 and SQS events come from the emulator's own bucket notifications.
- ``sam build`` / ``sam local invoke`` with the repo's events/, and ``sam local start-api`` with curl.

Skipped, with the reason, only where no Docker engine answers.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from PIL import Image

from localdev.lambda_container import (
    BASE_IMAGE,
    FunctionContainer,
    S3Emulator,
    build_context,
    build_image,
    docker,
    image_size,
    layer_sizes,
)
from support import (
    CREDENTIALS,
    ROOT,
    api_event,
    doc_commands,
    encode,
    free_port,
    function_env,
    list_keys,
    load_event,
    response_body,
    scene,
)

pytestmark = pytest.mark.image

ARTIFACTS = ROOT / "artifacts"
TAG = "midas-depth:test"
NETWORK = "midas-local"  # the network docs/local-aws.md runs sam local on
S3_NAME = "midas-image-test-s3"
INPUT_BUCKET = "midas-local-input"  # the names events/ and events/env-localstack.json use
OUTPUT_BUCKET = "midas-local-output"
SAM = ROOT / ".venv-tools" / "bin" / "sam"


def template_memory_size() -> int:
    """MemorySize's default in infra/template.yaml: the memory the function gets in AWS."""
    text = (ROOT / "infra" / "template.yaml").read_text()
    return int(re.search(r"^  MemorySize:\n(?:    .*\n)*?    Default: (\d+)", text, re.MULTILINE).group(1))


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    """The Lambda base image: pulled where a registry answers, else the local stand-in (make base-image)."""
    done = subprocess.run(["make", "-s", "base-image"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"make base-image failed:\n{done.stdout}\n{done.stderr}"
    return BASE_IMAGE


@pytest.fixture(scope="session")
def build_dir(baked_model_dir, tmp_path_factory) -> Path:
    return build_context(tmp_path_factory.mktemp("image-context"), baked_model_dir)


@pytest.fixture(scope="session")
def image(base_image, build_dir) -> str:
    seconds = build_image(build_dir, TAG)
    layers = layer_sizes(TAG)
    base_bytes = image_size(BASE_IMAGE)
    report = {
        "tag": TAG,
        "build_seconds": round(seconds, 1),
        "image_bytes": image_size(TAG),
        "base_image_bytes": base_bytes,
        "layers": [{"bytes": size, "instruction": what[:160]} for size, what in layers],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "image-layers.json").write_text(json.dumps(report, indent=2) + "\n")
    return TAG


@pytest.fixture(scope="session")
def s3_emulator(docker_engine, base_image):
    emulator = S3Emulator(NETWORK, S3_NAME, port=4566).start()  # where the docs expect LocalStack
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def emu(s3_emulator):
    """boto3 clients for the emulator container, with an input bucket that notifies a queue (as S3 does)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    s3 = session.client("s3", endpoint_url=s3_emulator.url)
    sqs = session.client("sqs", endpoint_url=s3_emulator.url)
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName="midas-uploads")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=INPUT_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        },
    )
    return {"s3": s3, "sqs": sqs, "queue_url": queue_url}


def container_env(emulator: S3Emulator) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": emulator.inner_url,
        **CREDENTIALS,
        "AWS_REGION": CREDENTIALS["AWS_DEFAULT_REGION"],
        **function_env(output_bucket=OUTPUT_BUCKET, input_buckets=INPUT_BUCKET),
    }


@pytest.fixture(scope="session")
def function(image, s3_emulator, emu):
    """The image as Lambda runs it: read-only root, tmpfs /tmp, non-root, MemorySize, 2048 MB's CPU share."""
    memory = template_memory_size()
    container = FunctionContainer(image, env=container_env(s3_emulator), memory_mb=memory, cpus=round(memory / 1769, 2))
    container.network = NETWORK
    with container:
        yield container


def upload_and_receive(emu, key: str, body: bytes) -> list[dict]:
    """Upload under uploads/ and return the S3 event(s) the emulator's notification delivered for it."""
    emu["s3"].put_object(Bucket=INPUT_BUCKET, Key=key, Body=body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = emu["sqs"].receive_message(QueueUrl=emu["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in reply.get("Messages", []):
            emu["sqs"].delete_message(QueueUrl=emu["queue_url"], ReceiptHandle=message["ReceiptHandle"])
            event = json.loads(message["Body"])  # other uploads' notifications (S3 references) are dropped
            if any(unquote_plus(r["s3"]["object"]["key"]) == key for r in event.get("Records", [])):
                return [event | {"_message_id": message["MessageId"]}]
    raise AssertionError(f"no notification for {key}")


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


# ------------------------------------------------------------------------------------------------ the build


def probe(image: str, script: str) -> dict:
    """Run a Python probe inside the image (as Lambda's user) and return the JSON it prints."""
    done = docker("run", "--rm", "--read-only", "--user=993:990", "--entrypoint=python", image, "-c", script)
    return json.loads(done.stdout)


def test_image_holds_the_runtime_only(image):
    facts = probe(
        image,
        "import importlib.util as u, json, os, shutil, sys;"
        "print(json.dumps({'torch': u.find_spec('torch') is not None, 'cv2': u.find_spec('cv2') is not None,"
        " 'compilers': [c for c in ('gcc', 'cc', 'g++', 'c++', 'clang', 'make') if shutil.which(c)],"
        " 'tmp': sorted(os.listdir('/tmp')), 'uid': os.getuid(),"
        " 'caches': [p for p in ('/root/.cache', '/tmp/.cache', '/var/task/.cache', '/root/.cache/pip')"
        "   if os.path.exists(p)],"
        " 'task': sorted(os.listdir('/var/task')), 'model': sorted(os.listdir(os.environ['MODEL_DIR'])),"
        " 'manifest': json.load(open(os.path.join(os.environ['MODEL_DIR'], 'manifest.json')))}))",
    )
    assert facts["torch"] is False and facts["cv2"] is False
    assert facts["compilers"] == []
    assert facts["tmp"] == []  # nothing left by the build's import (ORT telemetry state, caches)
    assert facts["caches"] == []
    assert facts["uid"] == 993
    assert facts["task"] == ["handler", "requirements.lock"]
    assert facts["model"] == ["manifest.json", "model.onnx.frame", "model.optimized.data", "model.optimized.onnx"]

    def strings(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    build_paths = [s for s in strings(facts["manifest"]) if s.startswith("/") or "/tmp/" in s or "/work/" in s]
    assert build_paths == [], f"manifest.json names build-machine paths: {build_paths}"


def test_image_layers_are_recorded_and_small(image):
    report = json.loads((ARTIFACTS / "image-layers.json").read_text())
    added = report["image_bytes"] - report["base_image_bytes"]
    # what this project adds on top of the base image: dependencies (~184 MB, what the function never imports left
    # out) + model (one copy of the weights: the optimised graph's 66 MB, model.onnx rebuilt from them) + code
    assert added < 275e6, f"the image adds {added / 1e6:.0f} MB to the base image"
    assert report["image_bytes"] <= 420e6, f"the image is {report['image_bytes'] / 1e6:.0f} MB"
    model_layer = [layer for layer in report["layers"] if re.search(r"COPY .* in /opt/ml/model", layer["instruction"])]
    assert len(model_layer) == 1 and 60e6 < model_layer[0]["bytes"] < 75e6
    pip_layer = [layer for layer in report["layers"] if "pip install" in layer["instruction"]]
    assert len(pip_layer) == 1 and pip_layer[0]["bytes"] < 200e6


def test_unknown_model_source_fails_the_build(base_image, build_dir):
    with pytest.raises(RuntimeError, match="MODEL_SOURCE must be 'bake' or 'prebaked'"):
        build_image(build_dir, "midas-depth:refused", MODEL_SOURCE="cached")


def test_prebaked_build_checks_the_pinned_checkpoint(base_image, build_dir, baked_model_dir):
    digest = json.loads((baked_model_dir / "manifest.json").read_text())["checkpoint_sha256"]
    with pytest.raises(RuntimeError, match=f"was baked from checkpoint {digest}, not {'0' * 64}"):
        build_image(build_dir, "midas-depth:refused", CHECKPOINT_SHA256="0" * 64)


def test_prebaked_build_without_a_model_says_to_bake(base_image, build_dir, tmp_path):
    bare = tmp_path / "context"
    shutil.copytree(build_dir, bare, ignore=shutil.ignore_patterns("model"))
    with pytest.raises(RuntimeError, match="run 'make bake' first"):
        build_image(bare, "midas-depth:refused")


# ------------------------------------------------------------------------------------------------ under the RIE


@pytest.mark.parametrize("kind", ["v1", "v2", "function-url"])
def test_health_under_the_emulator(function, kind):
    reply, _ = function.invoke(api_event(kind, "GET", "/health"))
    assert reply["statusCode"] == 200, reply
    health = json.loads(response_body(reply))
    assert health["status"] == "ok" and health["model"] == "MiDaS_small"
    # --cpus 1.16 (Lambda's share at 2048 MB): one ORT thread, from the cgroup quota and the memory size
    assert health["threads"] == 1


def test_quota_alone_sets_the_threads(image, s3_emulator):
    """Without Lambda's memory variable, the cgroup CPU quota (v1 or v2, whichever this host has) still counts."""
    env = {**container_env(s3_emulator), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": ""}
    with FunctionContainer(image, env=env, cpus=1.0, network=NETWORK) as container:
        reply, _ = container.invoke(api_event("v2", "GET", "/health"))
    assert json.loads(response_body(reply))["threads"] == 1


@pytest.mark.parametrize("kind", ["v1", "v2", "function-url"])
def test_raw_image_body_gets_the_heatmap(function, kind):
    jpeg = encode(scene(320, 200, seed=3))
    reply, _ = function.invoke(api_event(kind, "POST", "/depth", jpeg, "image/jpeg"))
    assert reply["statusCode"] == 200, reply.get("body")
    assert png_size(response_body(reply)) == (320, 200)


def test_multipart_predict_writes_to_s3(function, emu):
    jpeg = encode(scene(200, 150, seed=5))
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + jpeg
        + f"\r\n--{boundary}--\r\n".encode()
    )
    reply, _ = function.invoke(api_event("v2", "POST", "/predict", body, f"multipart/form-data; boundary={boundary}"))
    assert reply["statusCode"] == 200, reply.get("body")
    result = json.loads(response_body(reply))
    assert result["status"] == "success" and (result["width"], result["height"]) == (200, 150)
    heatmap = emu["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=result["s3"]["key"])["Body"].read()
    assert png_size(heatmap) == (200, 150)


def test_base64_json_depth_inline(function):
    payload = json.dumps({"image": base64.b64encode(encode(scene(96, 64, seed=6))).decode(), "output": "inline"})
    reply, _ = function.invoke(api_event("v2", "POST", "/depth", payload, "application/json"))
    assert reply["statusCode"] == 200, reply.get("body")
    result = json.loads(response_body(reply))
    assert png_size(base64.b64decode(result["heatmap_png_base64"])) == (96, 64)


def test_s3_reference_depth(function, emu):
    emu["s3"].put_object(Bucket=INPUT_BUCKET, Key="uploads/refs/ref.jpg", Body=encode(scene(128, 96, seed=7)))
    payload = json.dumps({"s3": f"s3://{INPUT_BUCKET}/uploads/refs/ref.jpg", "output": "s3"})
    reply, _ = function.invoke(api_event("v2", "POST", "/depth", payload, "application/json", caller="iam"))
    assert reply["statusCode"] == 200, reply.get("body")
    result = json.loads(response_body(reply))
    assert result["heatmap_s3"]["bucket"] == OUTPUT_BUCKET
    assert png_size(emu["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=result["heatmap_s3"]["key"])["Body"].read()) == (
        128,
        96,
    )
    missing = json.dumps({"s3": f"s3://{INPUT_BUCKET}/uploads/refs/missing.jpg"})
    reply, _ = function.invoke(api_event("function-url", "POST", "/depth", missing, "application/json", caller="iam"))
    assert reply["statusCode"] == 404 and json.loads(response_body(reply))["error"] == "s3_object_not_found"


def test_s3_put_event_from_the_emulator_writes_the_heatmap(function, emu):
    key = "uploads/café terrace.jpg"
    (event,) = upload_and_receive(emu, key, encode(scene(160, 120, seed=8)))
    event.pop("_message_id")
    reply, _ = function.invoke(event)
    assert [w["heatmap"] for w in reply.get("written", [])] == ["depth/uploads/café terrace.jpg.png"], reply
    png = emu["s3"].get_object(Bucket=OUTPUT_BUCKET, Key="depth/uploads/café terrace.jpg.png")["Body"].read()
    assert png_size(png) == (160, 120)


def test_sqs_batch_with_a_bad_record_reports_only_it(function, emu):
    good = upload_and_receive(emu, "uploads/batch-good.jpg", encode(scene(64, 48, seed=9)))[0]
    bad = upload_and_receive(emu, "uploads/batch-bad.jpg", b"not an image at all")[0]
    template = load_event("sqs-receive.json")["Records"][0]
    records = []
    for message_id, body in (
        (good.pop("_message_id"), json.dumps(good)),
        (bad.pop("_message_id"), json.dumps(bad)),  # an upload that fails for good: recorded, the message settled
        ("not-a-notification", "not JSON at all"),  # fails on every delivery: reported, for the dead-letter queue
    ):
        record = copy.deepcopy(template)
        record.update(messageId=message_id, body=body)
        records.append(record)
    reply, _ = function.invoke({"Records": records})
    assert [f["itemIdentifier"] for f in reply["batchItemFailures"]] == ["not-a-notification"]
    written = list_keys(emu["s3"], OUTPUT_BUCKET, "depth/uploads/batch-")
    assert "depth/uploads/batch-good.jpg.png" in written and "depth/uploads/batch-bad.jpg.png" not in written
    record = emu["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=f"depth/failures/{INPUT_BUCKET}/uploads/batch-bad.jpg.json")
    assert json.loads(record["Body"].read())["key"] == "uploads/batch-bad.jpg"


def test_the_function_ran_read_only_as_lambdas_user(function):
    logs = function.logs()
    assert "refusing to start" not in logs and "Read-only file system" not in logs
    inspect = json.loads(docker("inspect", function.id).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert inspect["Config"]["User"] == "993:990"
    assert inspect["HostConfig"]["Memory"] == template_memory_size() * 2**20


# ------------------------------------------------------------------------------------------------ SAM


def sam(build_dir: Path, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)  # the function's endpoint comes from --env-vars, SAM's own calls need none
    return subprocess.run([str(SAM), *args], cwd=build_dir, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def sam_built(image, build_dir) -> Path:
    """``sam build --parameter-overrides ModelSource=prebaked`` in the build context (its layers are cached)."""
    done = subprocess.run(["make", "-s", "tools-venv"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    built = sam(build_dir, "build", "--parameter-overrides", "ModelSource=prebaked")
    assert built.returncode == 0, built.stdout + built.stderr
    assert (build_dir / ".aws-sam" / "build" / "template.yaml").is_file()
    return build_dir


@pytest.fixture(scope="session")
def sam_env_file(build_dir, s3_emulator) -> Path:
    """events/env-localstack.json's settings with the endpoint of this run's emulator container."""
    settings = json.loads((ROOT / "events" / "env-localstack.json").read_text())
    settings["Parameters"]["AWS_ENDPOINT_URL"] = s3_emulator.inner_url  # every function's
    path = build_dir / "env-test.json"
    path.write_text(json.dumps(settings))
    return path


def sam_invoke(sam_built: Path, env_file: Path, event_file: str) -> dict:
    # HTTP events are the API function's, S3 and SQS events the upload function's (one image, two functions)
    function = "ApiFunction" if Path(event_file).name.startswith("api-") else "UploadFunction"
    done = sam(
        sam_built,
        "local",
        "invoke",
        function,
        "-e",
        event_file,
        "--env-vars",
        str(env_file),
        "--docker-network",
        NETWORK,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sam_local_invoke_s3_put_event(sam_built, sam_env_file, emu):
    event = json.loads((ROOT / "events" / "s3-put.json").read_text())
    record = event["Records"][0]["s3"]
    key = unquote_plus(record["object"]["key"])
    emu["s3"].put_object(Bucket=record["bucket"]["name"], Key=key, Body=encode(scene(120, 90, seed=10)))
    reply = sam_invoke(sam_built, sam_env_file, "events/s3-put.json")
    assert reply["written"], reply
    assert png_size(emu["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=f"depth/{key}.png")["Body"].read()) == (120, 90)


def test_sam_local_invoke_sqs_event(sam_built, sam_env_file, emu):
    event = json.loads((ROOT / "events" / "sqs-s3-put.json").read_text())
    inner = json.loads(event["Records"][0]["body"])["Records"][0]["s3"]
    key = unquote_plus(inner["object"]["key"])
    emu["s3"].put_object(Bucket=inner["bucket"]["name"], Key=key, Body=encode(scene(100, 80, seed=11)))
    reply = sam_invoke(sam_built, sam_env_file, "events/sqs-s3-put.json")
    assert reply == {"batchItemFailures": []}
    assert png_size(emu["s3"].get_object(Bucket=OUTPUT_BUCKET, Key=f"depth/{key}.png")["Body"].read()) == (100, 80)


@pytest.mark.parametrize("event_file", ["events/api-health.json", "events/api-depth-png.json"])
def test_sam_local_invoke_api_events(sam_built, sam_env_file, event_file):
    reply = sam_invoke(sam_built, sam_env_file, event_file)
    assert reply["statusCode"] == 200, reply
    if "depth" in event_file:
        source = json.loads((ROOT / event_file).read_text())["body"]
        with Image.open(io.BytesIO(base64.b64decode(source))) as img:
            assert png_size(response_body(reply)) == img.size


@pytest.fixture(scope="session")
def start_api(sam_built, sam_env_file):
    """``sam local start-api`` on a free loopback port, its function containers on the emulator's network."""
    port = free_port()
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env.update(AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)
    log = (sam_built / "start-api.log").open("w")
    process = subprocess.Popen(
        [str(SAM), "local", "start-api", "--port", str(port), "--env-vars", str(sam_env_file)]
        + ["--docker-network", NETWORK],
        cwd=sam_built,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=60) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((sam_built / "start-api.log").read_text()) from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        for container in docker("ps", "-aq", "--filter", f"network={NETWORK}").stdout.split():
            if container != docker("ps", "-aq", "--filter", f"name={S3_NAME}").stdout.strip():
                docker("rm", "--force", container, check=False)


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=120)


def test_start_api_serves_health_page_and_base64_json(start_api, tmp_path):
    assert json.loads(curl(f"{start_api}/health").stdout)["status"] == "ok"
    assert b"<html" in curl(f"{start_api}/").stdout.lower()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode(scene(640, 480, seed=12), quality=95))
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"image": base64.b64encode(photo.read_bytes()).decode(), "output": "inline"}))
    done = curl("-H", "Content-Type: application/json", "--data-binary", f"@{body}", f"{start_api}/depth")
    result = json.loads(done.stdout)
    assert png_size(base64.b64decode(result["heatmap_png_base64"])) == (640, 480)


def test_start_api_s3_reference_needs_an_authenticated_caller(start_api, emu):
    """SAM CLI's local HTTP API, like the deployed public one, carries no authorizer: an S3 reference is refused
    (signed callers are tested through the emulator with IAM events above)."""
    emu["s3"].put_object(Bucket=INPUT_BUCKET, Key="uploads/api-ref.jpg", Body=encode(scene(80, 60, seed=13)))
    done = curl(
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"s3": f"s3://{INPUT_BUCKET}/uploads/api-ref.jpg", "output": "s3"}),
        f"{start_api}/depth",
    )
    assert json.loads(done.stdout)["error"] == "authentication_required"


def test_start_api_cannot_carry_binary_bodies(start_api, tmp_path):
    """SAM CLI's local HTTP API decodes request bodies as UTF-8 (HTTP APIs have no BinaryMediaTypes to say
    otherwise), so a JPEG body never reaches the function; the docs send these to `make serve` instead. The day
    SAM carries them, this fails and the docs can say so."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode(scene(64, 48, seed=14)))
    raw = curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Content-Type: image/jpeg",
        "--data-binary",
        f"@{photo}",
        f"{start_api}/depth",
    )
    multipart = curl("-o", "/dev/null", "-w", "%{http_code}", "-F", f"image=@{photo}", f"{start_api}/predict")
    assert raw.stdout == b"502" and multipart.stdout == b"502"


def lambda_containers() -> dict[str, str]:
    """SAM CLI's function containers running on the network: container id → the function's logical id."""
    listed = docker(
        "ps",
        "--filter",
        f"network={NETWORK}",
        "--filter",
        "label=sam.cli.container.type=lambda",
        "--format",
        '{{.ID}} {{.Label "sam.cli.function.name"}}',
    ).stdout
    return dict(line.split() for line in listed.splitlines())


def test_start_api_runs_the_api_functions_container_alone(start_api):
    """start-api routes to ApiFunction only: samconfig.toml's warm containers start UploadFunction's never (EAGER
    would, at start-up), and the one container the fixture's first request started stays warm for the next."""
    started = lambda_containers()
    assert sorted(started.values()) == ["ApiFunction"], started
    assert json.loads(curl(f"{start_api}/health").stdout)["status"] == "ok"
    assert lambda_containers() == started


# ------------------------------------------------------------------------------------------------ the docs' commands
# Every `image` block of README.md and docs/, run with bash in a copy of the checkout (the build context above,
# with a photo, .venv-tools linked: no `sam` on PATH, as for a user), against this run's `sam local start-api`
# (port 3000 in the docs) and the S3 emulator container, which answers where the docs put LocalStack
# (localhost:4566, `localstack` on the midas-local network).
NOT_RUNNABLE_HERE = {
    "localstack/localstack": "pulls LocalStack's image from Docker Hub, which no registry here can serve",
}
IMAGE_BLOCKS = doc_commands.blocks("image")


@pytest.mark.parametrize("block", IMAGE_BLOCKS, ids=[b.id for b in IMAGE_BLOCKS])
def test_image_doc_block_runs(block, sam_built, start_api, emu, tmp_path):
    for needle, reason in NOT_RUNNABLE_HERE.items():
        if needle in block.text:
            pytest.skip(f"{block.id} {reason}")
    (sam_built / "photo.jpg").write_bytes(encode(scene(640, 480, seed=15), quality=95))
    if not (sam_built / ".venv-tools").exists():  # the docs run the SAM CLI make setup installs by its path
        (sam_built / ".venv-tools").symlink_to(ROOT / ".venv-tools")
    script = "set -euo pipefail\n" + block.text.replace("http://127.0.0.1:3000", start_api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SAM_CLI_TELEMETRY="0", PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}")
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    done = subprocess.run(["bash", "-c", script], cwd=sam_built, env=env, capture_output=True, text=True, timeout=900)
    output = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{block.id}:\n{script}\n{output}"
    for name in ("sam-depth.png", "heatmap.png", "depth.png"):
        if f"> {name}" in block.text:
            assert png_size((sam_built / name).read_bytes())[0] > 0
