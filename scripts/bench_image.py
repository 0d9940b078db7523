"""Benchmark the real container image under the Lambda Runtime Interface Emulator, at Lambda-like CPU shares.

For each CPU share Lambda gives (``--cpus 0.58`` = 1024 MB, ``1.0`` = 1769 MB, ``1.16`` = 2048 MB, ``1.7`` =
3008 MB, and no quota on this machine's 2 cores = 3538 MB; AWS_LAMBDA_FUNCTION_MEMORY_SIZE set to match, as Lambda
sets it) a fresh
container is started with Lambda's constraints (localdev/lambda_container.py: read-only root, tmpfs /tmp, non-root
user, memory capped at the MemorySize) and measured:

  init         in a fresh container, the import of handler.entry (settings, model loaded and verified): what
               Lambda bills as Init Duration, less the interpreter's and its runtime client's own start;
  cold start   docker run → first answer to a 640x480 raw-JPEG POST /depth (what a caller waits for), and the
               RIE's own "Init Duration" (imports + model load) and first "Duration" from its REPORT lines;
  warm         p50 / p95 of POST /depth (raw JPEG → heatmap PNG) at 640x480, 1920x1080 and 4032x3024, through
               the RIE's invocation API (API Gateway v2 event, base64 body, as API Gateway sends it);
  memory       the container's memory after init (idle) and its cgroup peak over the whole run;
  cost         $ per 1 M 640x480 images at each share, x86 and arm64 prices, with and without init billed.

``--sweep`` also times 640x480 under each ORT thread/spinning setting at each CPU share, to choose the default.

Where the image carries the bake's int8 model (a model directory baked with ``--precision int8``, as the template's
ModelPrecision=int8 builds it), the same image is measured again with MODEL_PRECISION=int8 at 1024 and 2048 MB,
and fp32 and int8 are printed side by side. Its MAX_INT8_ABS_REL is lax (the gate opened): the gate judges the
weights' fidelity, which a benchmark does not measure, and the test weights fail it.

    python scripts/bench_image.py [--model-dir layer/model] [--json out.json] [--sweep] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from localdev.bench import PRICE_GB_S, PRICE_REQUEST, SIZES, photo_like_jpeg
from localdev.events import api_event, depth_event, response_body
from localdev.lambda_container import (
    FunctionContainer,
    build_context,
    build_image,
    docker,
    image_size,
    lambda_constraints,
)

ROOT = Path(__file__).resolve().parents[1]
# Lambda's CPU share at a memory size (1769 MB = one vCPU), emulated with docker's --cpus; 3538 MB = 2 vCPUs =
# this machine's two whole cores (no quota). (label, --cpus, MemorySize)
CPU_SHARES = [
    ("--cpus 0.58 (1024 MB)", 0.58, 1024),
    ("--cpus 1.0 (1769 MB)", 1.0, 1769),
    ("--cpus 1.16 (2048 MB)", 1.16, 2048),
    ("--cpus 1.7 (3008 MB)", 1.7, 3008),
    ("unlimited (3538 MB)", None, 3538),
]
# ORT settings compared by --sweep (env of the function); {} = the function's own choice.
SWEEP = {
    "default": {},
    "1 thread": {"ORT_THREADS": "1"},
    "2 threads, spinning": {"ORT_THREADS": "2", "ORT_SPINNING": "true"},
    "2 threads, no spinning": {"ORT_THREADS": "2", "ORT_SPINNING": "false"},
}
# The shares int8 is measured at too, and its environment: the fidelity gate opened (see the docstring).
INT8_SHARES = ("--cpus 0.58 (1024 MB)", "--cpus 1.16 (2048 MB)")
INT8_ENV = {"MODEL_PRECISION": "int8", "MAX_INT8_ABS_REL": "1e9"}
COLD_EVERY = 1000  # the cost table's second column bills one init per this many images


def cost_rows(shares: dict) -> list[dict]:
    """$ per 1 M 640x480 images at each measured share: warm duration billed, and with one init (a cold start:
    the function's init, :func:`init_seconds`) billed every COLD_EVERY images. arm64 prices on these x86
    durations: no arm64 machine measured them."""
    rows = []
    for label, figures in shares.items():
        memory_gb = int(label.split("(")[1].split()[0]) / 1024
        warm_s = figures["warm"]["640x480"]["p50_ms"] / 1000
        init_s = figures["init_s"]
        row = {"share": label, "warm_ms": round(warm_s * 1000, 1), "init_ms": round(init_s * 1000)}
        for arch, price in PRICE_GB_S.items():
            warm_usd = 1e6 * (warm_s * memory_gb * price + PRICE_REQUEST)
            row[f"{arch}_usd"] = round(warm_usd, 2)
            row[f"{arch}_usd_with_init"] = round(warm_usd + 1e6 / COLD_EVERY * init_s * memory_gb * price, 2)
        rows.append(row)
    return rows


def print_precision_table(shares: dict, int8: dict) -> None:
    """fp32 and int8 side by side at the shares both were measured at."""
    fp32_cost = {row["share"]: row for row in cost_rows(shares)}
    int8_cost = {row["share"]: row for row in cost_rows(int8)}
    print("\nfp32 and int8 (MODEL_PRECISION=int8, MAX_INT8_ABS_REL lax: the test weights fail the gate), same image:")
    print("\n| share (MemorySize) | precision | 640x480 p50 | 4032x3024 p50 | init | first answer | x86 $/1M |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label in int8:
        for precision, figures, cost in (("fp32", shares[label], fp32_cost), ("int8", int8[label], int8_cost)):
            print(
                f"| {label} | {precision} | {figures['warm']['640x480']['p50_ms']} ms |"
                f" {figures['warm']['4032x3024']['p50_ms']} ms | {figures['init_s']} s | {figures['cold_start_s']} s |"
                f" {cost[label]['x86_64_usd']:.2f} |"
            )


def print_cost_table(rows: list[dict]) -> None:
    print(
        f"\n| share (MemorySize) | 640x480 warm | init | x86 $/1M | x86 $/1M, init every {COLD_EVERY} |"
        f" arm64 $/1M | arm64 $/1M, init every {COLD_EVERY} |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['share']} | {r['warm_ms']} ms | {r['init_ms']} ms | {r['x86_64_usd']:.2f} |"
            f" {r['x86_64_usd_with_init']:.2f} | {r['arm64_usd']:.2f} | {r['arm64_usd_with_init']:.2f} |"
        )


def rie_reports(logs: str) -> list[dict[str, float]]:
    """The RIE's REPORT lines as {"init_ms": ..., "duration_ms": ...} (init only on the first)."""
    reports = []
    for line in logs.splitlines():
        if not line.startswith("REPORT"):
            continue
        fields = {}
        for part in line.split("\t"):
            name, _, value = part.partition(":")
            if name.strip() in ("Init Duration", "Duration"):
                key = "init_ms" if name.strip() == "Init Duration" else "duration_ms"
                fields[key] = float(value.strip().split()[0])
        reports.append(fields)
    return reports


def check_answer(reply: dict) -> None:
    if reply.get("statusCode") != 200:
        raise RuntimeError(f"the function answered {reply.get('statusCode')}: {str(reply.get('body'))[:300]}")


# Run inside a fresh container: seconds to import handler.entry (settings, model loaded and verified), i.e. the
# function's init less the interpreter's own start (the container's start is docker's, not Lambda's).
INIT_PROBE = "import time; t = time.perf_counter(); import handler.entry; print(round(time.perf_counter() - t, 3))"


def init_seconds(image: str, cpus: float | None, memory_mb: int, env: dict[str, str], runs: int = 3) -> float:
    """Median over ``runs`` fresh containers (Lambda's constraints) of :data:`INIT_PROBE`: the function's init."""
    flags = ["--rm", *lambda_constraints(memory_mb, cpus, {"POWERTOOLS_LOG_LEVEL": "WARNING", **env})]
    seconds = []
    for _ in range(runs):
        out = docker("run", *flags, "--entrypoint=python", image, "-c", INIT_PROBE).stdout
        seconds.append(float(out.strip().splitlines()[-1]))
    return statistics.median(seconds)


def measure(image: str, cpus: float | None, memory_mb: int, env: dict[str, str], runs: dict, jpegs: dict) -> dict:
    """One fresh container: cold start, warm latencies per size, memory."""
    events = {size: depth_event(data) for size, data in jpegs.items()}
    env = {"POWERTOOLS_LOG_LEVEL": "WARNING", **env}
    with FunctionContainer(image, env=env, cpus=cpus, memory_mb=memory_mb) as container:
        reply, _ = container.invoke(events["640x480"])
        cold = time.perf_counter() - container.started_at
        check_answer(reply)
        health, _ = container.invoke(api_event("v2", "GET", "/health"))
        check_answer(health)
        precision = json.loads(response_body(health))["precision"]
        if precision != env.get("MODEL_PRECISION", "fp32"):
            raise RuntimeError(f"asked for {env.get('MODEL_PRECISION', 'fp32')}, the function serves {precision}")
        idle = container.memory_bytes()
        warm = {}
        for size, count in runs.items():
            samples = []
            for _ in range(count):
                reply, seconds = container.invoke(events[size])
                check_answer(reply)
                samples.append(seconds * 1000)
            samples.sort()
            warm[size] = {
                "p50_ms": round(statistics.median(samples), 1),
                "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 1),
                "runs": count,
            }
        reports = rie_reports(container.logs())
        peak = container.peak_memory_bytes()
    first = reports[0] if reports else {}
    return {
        "precision": precision,
        "init_s": round(init_seconds(image, cpus, memory_mb, env), 3),
        "cold_start_s": round(cold, 3),
        "rie_init_ms": first.get("init_ms"),
        "rie_first_duration_ms": first.get("duration_ms"),
        "warm": warm,
        "idle_memory_mb": round(idle / 2**20),
        "peak_memory_mb": round(peak / 2**20),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "layer" / "model", help="baked model to ship")
    parser.add_argument("--image", help="measure this already-built image instead of building one")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--sweep", action="store_true", help="compare ORT thread/spinning settings at 640x480")
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test of the benchmark)")
    args = parser.parse_args(argv)

    results: dict = {"machine": {}, "image": {}, "shares": {}, "int8": {}, "sweep": {}}
    tag = args.image
    if tag is None:
        if not (args.model_dir / "manifest.json").is_file():
            print(f"error: no baked model in {args.model_dir}: run `make bake` first", file=sys.stderr)
            return 2
        tag = "midas-depth:bench"
        with tempfile.TemporaryDirectory(prefix="midas-image-") as tmp:
            results["image"]["build_s"] = round(build_image(build_context(Path(tmp), args.model_dir), tag), 1)
    results["image"].update(tag=tag, size_mb=round(image_size(tag) / 1e6))
    results["machine"] = {"cpus": os.cpu_count(), "cpu": _cpu_model(), "load": _load()}
    has_int8 = _carries_int8(tag)

    runs = (
        {"640x480": 5, "1920x1080": 2, "4032x3024": 1}
        if args.quick
        else {"640x480": 20, "1920x1080": 8, "4032x3024": 3}
    )
    jpegs = {size: photo_like_jpeg(*SIZES[size], seed=1) for size in runs}
    for label, cpus, memory_mb in CPU_SHARES:
        results["shares"][label] = measure(tag, cpus, memory_mb, {}, runs, jpegs)
        print(f"{label}: {json.dumps(results['shares'][label])}", flush=True)
        if args.sweep:
            sweep_runs = {"640x480": runs["640x480"]}
            for name, env in SWEEP.items():
                figures = measure(tag, cpus, memory_mb, env, sweep_runs, jpegs)
                results["sweep"].setdefault(label, {})[name] = figures["warm"]["640x480"]["p50_ms"]
            print(f"  sweep 640x480 p50 ms: {json.dumps(results['sweep'][label])}", flush=True)
        if label in INT8_SHARES and has_int8:
            results["int8"][label] = measure(tag, cpus, memory_mb, INT8_ENV, runs, jpegs)
            print(f"{label}, int8: {json.dumps(results['int8'][label])}", flush=True)
    results["cost"] = cost_rows(results["shares"])
    results["machine"]["load"] += _load()
    print_cost_table(results["cost"])
    if results["int8"]:
        results["int8_cost"] = cost_rows(results["int8"])
        print_precision_table(results["shares"], results["int8"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _carries_int8(image: str) -> bool:
    """Whether the image's model directory holds the bake's int8 model."""
    probe = "import json, os; print('int8' in json.load(open(os.environ['MODEL_DIR'] + '/manifest.json')))"
    return docker("run", "--rm", "--entrypoint=python", image, "-c", probe).stdout.strip() == "True"


def _load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
