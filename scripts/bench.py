"""Benchmark: this project vs. the usual MiDaS CPU service, side by side on one machine, in one run.

Baseline = what a typical MiDaS CPU service does: torch eager MidasNet_small from the same checkpoint, upstream's
float64 preprocessing (bake/upstream_reference.py), torch bicubic upsampling, OpenCV Inferno, cv2 PNG.
Project = the Lambda entry (handler.entry: imports + verified ONNX model), invoked per request with an HTTP API event
(POST /depth, raw JPEG body; the heatmap PNG comes back through Mangum, as on Lambda).

Every figure comes from fresh worker processes (so cold init and peak RSS are honest):
  cold init     spawn → handler ready (imports + model load), median of --cold-runs, then the first request;
  warm latency  bytes in → heatmap PNG bytes out, p50/p95, per-stage breakdown, for 640x480, 1920x1080 and
                4032x3024 JPEGs; peak RSS per size (VmHWM reset between sizes) and idle RSS after init;
  disk          size of the runtime dependencies (requirements.txt's closure) vs. the baseline's (torch instead of ORT);
  FLOP bound    the ONNX forward at 256x192 against 6.9 GFLOP / this machine's measured SGEMM peak;
  int8          the project again with MODEL_PRECISION=int8 (the bake's int8 model; the fidelity gate opened, as
                speed does not depend on the weights' values), and fp32 and int8 forwards at 256x192 at one and
                at all threads, side by side;
  cost          per 1 M images (640x480) at Lambda x86 prices for 1024, 2048 and 3008 MB.

    python scripts/bench.py [--checkpoint PATH] [--model-dir DIR] [--json out.json] [--quick]

Without --checkpoint, a random-weight checkpoint with the official keys/shapes is generated (speed and memory
do not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import base64
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localdev.bench import MB_PER_VCPU, PRICE_GB_S, PRICE_REQUEST, SIZES, photo_like_jpeg
from localdev.events import depth_event

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("decode", "preprocess", "inference", "upsample", "colormap", "encode")
FORWARD_GFLOP = 6.9  # MidasNet_small at 256x192 (9.19 GFLOP at 256x256, scaled by the pixel count)


# ------------------------------------------------------------------------------------------------ workers


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


class ProjectPipeline:
    """The Lambda entry as deployed (importing it loads and verifies the model), invoked with the HTTP API event of
    ``POST /depth`` with the raw JPEG (base64, as API Gateway sends it): Mangum, FastAPI and the response included."""

    def __init__(self) -> None:
        import handler.entry

        self.entry = handler.entry
        self.timings: dict[str, float] = {}
        render = handler.entry.estimator.heatmap_png

        def heatmap_png(result, colormap=None):  # the stage timings of the request, as the function logs them
            png = render(result, colormap)
            self.timings = dict(result.timings)
            return png

        handler.entry.estimator.heatmap_png = heatmap_png
        self.data, self.event = b"", {}  # the current size's event only: the worker measures peak memory per size

    def run(self, data: bytes) -> tuple[bytes, dict[str, float]]:
        from localdev.function import LambdaContext

        if data is not self.data:
            self.data, self.event = data, depth_event(data)
        reply = self.entry.lambda_handler(self.event, LambdaContext())
        if reply["statusCode"] != 200:
            raise SystemExit(f"POST /depth answered {reply['statusCode']}: {reply['body'][:300]}")
        return base64.b64decode(reply["body"]), self.timings


class BaselinePipeline:
    """The usual MiDaS CPU service: torch eager, float64 upstream transform, torch bicubic, OpenCV Inferno."""

    def __init__(self, checkpoint: str) -> None:
        import cv2  # noqa: F401
        import fastapi  # noqa: F401  (a service imports its web stack too, as the project does)
        import mangum  # noqa: F401
        import torch

        from bake.checkpoint import build_model, load_state_dict

        self.torch = torch
        self.model = build_model(load_state_dict(Path(checkpoint)))

    def run(self, data: bytes) -> tuple[bytes, dict[str, float]]:
        import cv2
        import numpy as np

        from bake import upstream_reference as upstream

        t, clock = {}, time.perf_counter
        t0 = clock()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t1 = clock()
        sample = self.torch.from_numpy(upstream.small_transform(rgb))
        t2 = clock()
        with self.torch.no_grad():
            prediction = self.model.forward(sample)
            t3 = clock()
            depth = (
                self.torch.nn.functional.interpolate(
                    prediction.unsqueeze(1), size=rgb.shape[:2], mode="bicubic", align_corners=False
                )
                .squeeze()
                .numpy()
            )
        t4 = clock()
        heat = cv2.applyColorMap(upstream.write_depth_values(depth, 1), cv2.COLORMAP_INFERNO)
        t5 = clock()
        png = cv2.imencode(".png", heat)[1].tobytes()
        t6 = clock()
        t.update(
            decode=t1 - t0, preprocess=t2 - t1, inference=t3 - t2, upsample=t4 - t3, colormap=t5 - t4, encode=t6 - t5
        )
        return png, t


def worker(args: argparse.Namespace) -> None:
    """Child process: init, say READY, then serve the requests named on the command line; JSON on stdout."""
    pipeline = ProjectPipeline() if args.worker == "project" else BaselinePipeline(args.checkpoint)
    print("READY", flush=True)
    report: dict = {"idle_rss_mb": _rss_mb(), "sizes": {}}
    images = json.loads(Path(args.images).read_text())
    first = True
    for name in args.sizes.split(","):
        data = bytes.fromhex(images[name])
        _reset_peak_rss()
        latencies, stages = [], {s: [] for s in STAGES}
        for i in range(args.repeats + 1):
            started = time.perf_counter()
            png, timings = pipeline.run(data)
            elapsed = time.perf_counter() - started
            if first:
                report["first_request_s"] = elapsed
                first = False
            if i == 0:
                continue  # the first run of each size warms caches and allocators
            latencies.append(elapsed)
            for stage in STAGES:
                stages[stage].append(timings.get(stage, 0.0))
        if not latencies:  # a cold-start run: only init and the first request matter
            continue
        report["sizes"][name] = {
            "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * _percentile(latencies, 95),
            "stages_ms": {s: 1000 * statistics.median(v) for s, v in stages.items()},
            "peak_rss_mb": _rss_mb("VmHWM"),
            "png_bytes": len(png),
        }
    print("RESULT " + json.dumps(report), flush=True)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def spawn(kind: str, env: dict[str, str], images: Path, sizes: str, repeats: int, checkpoint: str) -> dict:
    """Start a worker (``kind``: project, project-int8 or baseline); time spawn → READY (cold init) from here, then
    collect its report."""
    if kind == "project-int8":
        kind, env = "project", {**env, "MODEL_PRECISION": "int8", "MAX_INT8_ABS_REL": str(OPEN_GATE)}
    cmd = [sys.executable, __file__, "--worker", kind, "--images", str(images), "--sizes", sizes]
    cmd += ["--repeats", str(repeats), "--checkpoint", checkpoint]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    ready = None
    report = None
    for line in proc.stdout:
        if line.startswith("READY") and ready is None:
            ready = time.perf_counter() - started
        elif line.startswith("RESULT "):
            report = json.loads(line[7:])
    if proc.wait() != 0 or report is None:
        raise SystemExit(f"{kind} worker failed (exit {proc.returncode})")
    report["cold_init_s"] = ready
    return report


# ------------------------------------------------------------------------------------------------ machine facts


def sgemm_peak_gflops() -> float:
    """Best of several float32 GEMMs (numpy's BLAS, all cores): this machine's practical FLOP/s peak."""
    import numpy as np

    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def forward_ms(model_dir: str, threads: int = 0, precision: str = "fp32") -> float:
    """Median ORT forward at 256x192 with the project's session settings (``threads`` 0 = the CPU share)."""
    import numpy as np

    from handler.model import DepthModel

    model = DepthModel.load(model_dir, threads, precision=precision, max_int8_abs_rel=OPEN_GATE)
    if model.precision != precision:
        raise SystemExit(f"asked for {precision}, the model serves {model.precision}: {model.precision_note}")
    x = np.random.default_rng(0).standard_normal((1, 3, 192, 256), dtype=np.float32)
    for _ in range(5):
        model.infer(x)
    return 1000 * statistics.median(_timed(lambda: model.infer(x)) for _ in range(40))


# MAX_INT8_ABS_REL for the int8 side: the gate judges fidelity, which the benchmark does not measure.
OPEN_GATE = 1e9


def dependency_mb(requirements: list[str]) -> float:
    """Installed size of the named distributions and everything they require (this venv's files)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen: set[str] = set()
    total = 0
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        name = req.name.lower().replace("_", "-")
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        total += sum(f.size or 0 for f in dist.files or [])
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return total / 1e6


def runtime_requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


# ------------------------------------------------------------------------------------------------ report


def cost_per_million(seconds_at_2_vcpu: float, memory_mb: int) -> tuple[float, float]:
    """(duration s, $) assuming CPU-bound work that scales with vCPUs (memory/1769 MB), measured on 2 vCPUs."""
    vcpus = min(memory_mb / MB_PER_VCPU, 6)
    duration = seconds_at_2_vcpu * 2 / min(vcpus, 2)
    return duration, 1e6 * (duration * memory_mb / 1024 * PRICE_GB_S["x86_64"] + PRICE_REQUEST)


def print_table(r: dict) -> None:
    p, b = r["project"], r["baseline"]

    def row(label, pv, bv, unit="", fmt="{:.0f}"):
        ratio = pv / bv if bv else float("nan")
        print(f"| {label} | {fmt.format(pv)}{unit} | {fmt.format(bv)}{unit} | {ratio:.2f} |")

    print(f"\nMachine: {r['machine']}\n")
    print("| figure | project | baseline | project/baseline |\n| --- | ---: | ---: | ---: |")
    row("cold init (spawn → ready)", p["cold_init_s"], b["cold_init_s"], " s", "{:.2f}")
    row("first request after init (640x480)", 1000 * p["first_request_s"], 1000 * b["first_request_s"], " ms")
    row("idle RSS after init", p["idle_rss_mb"], b["idle_rss_mb"], " MB")
    for size in SIZES:
        ps, bs = p["sizes"][size], b["sizes"][size]
        row(f"{size} warm p50", ps["p50_ms"], bs["p50_ms"], " ms")
        row(f"{size} warm p95", ps["p95_ms"], bs["p95_ms"], " ms")
        row(f"{size} peak RSS", ps["peak_rss_mb"], bs["peak_rss_mb"], " MB")
    row("runtime dependencies on disk", r["disk_mb"]["project"], r["disk_mb"]["baseline"], " MB")
    print("\nPer-stage medians (ms), project / baseline:\n")
    print("| size | " + " | ".join(STAGES) + " |\n| --- |" + " ---: |" * len(STAGES))
    for size in SIZES:
        cells = [f"{p['sizes'][size]['stages_ms'][s]:.1f} / {b['sizes'][size]['stages_ms'][s]:.1f}" for s in STAGES]
        print(f"| {size} | " + " | ".join(cells) + " |")
    print("\nOutside the forward (project; p50 end to end less the median inference stage of the same requests):\n")
    print("| size | end to end p50 | forward | outside the forward | share of the forward | JPEG decode |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for size in SIZES:
        o = r["overhead"][size]
        print(
            f"| {size} | {o['e2e_ms']:.1f} ms | {o['forward_ms']:.1f} ms | {o['outside_ms']:.1f} ms | "
            f"{100 * o['share_of_forward']:.0f} % | {o['decode_ms']:.1f} ms |"
        )
    big = r["overhead"]["4032x3024"]
    print(
        f"\n4032x3024: end to end {big['e2e_ms']:.0f} ms against 1.5 x forward + decode = "
        f"{1.5 * big['forward_ms'] + big['decode_ms']:.0f} ms"
    )
    if "project_int8" in r:
        q = r["project_int8"]
        print("\nfp32 and int8 (MODEL_PRECISION=int8), the same run:\n")
        print("| figure | int8 | fp32 | int8/fp32 |\n| --- | ---: | ---: | ---: |")
        row("cold init (spawn → ready)", q["cold_init_s"], p["cold_init_s"], " s", "{:.2f}")
        for size in SIZES:
            row(f"{size} warm p50", q["sizes"][size]["p50_ms"], p["sizes"][size]["p50_ms"], " ms")
            qi, pi = q["sizes"][size]["stages_ms"]["inference"], p["sizes"][size]["stages_ms"]["inference"]
            row(f"{size} inference stage", qi, pi, " ms", "{:.1f}")
        print("\nForward at 256x192 (median of 40):\n")
        for label, ms in r["precisions"].items():
            print(f"- {label}: {ms:.1f} ms")
        one = r["precisions"]["fp32, 1 thread"] / r["precisions"]["int8, 1 thread"]
        print(f"\nint8 at one thread: {one:.2f}x faster than fp32")
    print(f"\nLoad average before / after: {' '.join(r['load'][:3])} / {' '.join(r['load'][3:])}")
    f = r["forward"]
    print(
        f"\nONNX forward at 256x192: {f['ms']:.1f} ms; SGEMM peak {f['sgemm_gflops']:.0f} GFLOP/s → FLOP bound "
        f"{f['bound_ms']:.1f} ms for {FORWARD_GFLOP} GFLOP; forward/bound {f['ratio_to_bound']:.2f}"
    )
    print("\nCost per 1 M images (640x480, warm), Lambda x86 $0.0000166667/GB-s + $0.20/M requests;")
    print("assumes CPU-bound work scaling with vCPUs = memory/1769 MB, measured here on 2 vCPUs:\n")
    print("| memory | vCPUs | project duration | project $ | baseline duration | baseline $ |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for mem, c in r["cost"].items():
        print(
            f"| {mem} MB | {int(mem) / MB_PER_VCPU:.2f} | {1000 * c['project_s']:.0f} ms | {c['project_usd']:.2f} | "
            f"{1000 * c['baseline_s']:.0f} ms | {c['baseline_usd']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="official-format checkpoint (default: generate a random-weight one)")
    parser.add_argument("--model-dir", help="baked model (default: bake the checkpoint into a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--repeats", type=int, default=0, help="warm runs per size (default: 30/15/5 by size)")
    parser.add_argument("--cold-runs", type=int, default=7, help="spawns per side for cold init (median)")
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke run, not for the README)")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["project", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    with tempfile.TemporaryDirectory(prefix="midas-bench-") as scratch:
        tmp = Path(scratch)
        checkpoint = args.checkpoint
        if not checkpoint:
            from bake.random_checkpoint import write_checkpoint

            checkpoint = str(write_checkpoint(tmp / "checkpoint.pt"))
        model_dir = str(Path(args.model_dir).resolve()) if args.model_dir else None  # workers run from the repo
        if not model_dir:
            from bake.pipeline import bake

            model_dir = str(tmp / "model")
            bake(Path(checkpoint), checkpoint, Path(model_dir), int8=True)
        images = tmp / "images.json"
        images.write_text(json.dumps({name: photo_like_jpeg(*wh).hex() for name, wh in SIZES.items()}))

        env = {**os.environ, "MODEL_DIR": model_dir, "POWERTOOLS_LOG_LEVEL": "ERROR", "AWS_DEFAULT_REGION": "us-east-1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        compileall.compile_dir(ROOT / "handler", quiet=1)  # the image ships compiled bytecode (its build imports it)
        repeats = {"640x480": 30, "1920x1080": 15, "4032x3024": 5}
        if args.quick:
            repeats = dict.fromkeys(SIZES, 2)
        if args.repeats:
            repeats = dict.fromkeys(SIZES, args.repeats)

        results: dict = {"machine": _machine(), "load": Path("/proc/loadavg").read_text().split()[:3]}
        int8 = "int8" in json.loads((Path(model_dir) / "manifest.json").read_text())
        for kind in ("project", "project-int8", "baseline") if int8 else ("project", "baseline"):
            print(f"measuring {kind} …", file=sys.stderr, flush=True)
            colds = [spawn(kind, env, images, "640x480", 0, checkpoint) for _ in range(args.cold_runs)]
            report: dict = {
                "cold_init_s": statistics.median(c["cold_init_s"] for c in colds),
                "first_request_s": statistics.median(c["first_request_s"] for c in colds),
                "idle_rss_mb": statistics.median(c["idle_rss_mb"] for c in colds),
                "sizes": {},
            }
            for size in SIZES:  # one process per size: peak RSS of that size alone
                report["sizes"][size] = spawn(kind, env, images, size, repeats[size], checkpoint)["sizes"][size]
            results[kind.replace("-", "_")] = report

        results["overhead"] = {}
        for size in SIZES:
            figures = results["project"]["sizes"][size]
            forward, decode = figures["stages_ms"]["inference"], figures["stages_ms"]["decode"]
            results["overhead"][size] = {
                "e2e_ms": figures["p50_ms"],
                "forward_ms": forward,
                "outside_ms": figures["p50_ms"] - forward,
                "share_of_forward": (figures["p50_ms"] - forward) / forward,
                "decode_ms": decode,
            }
        ms = forward_ms(model_dir)
        peak = sgemm_peak_gflops()
        bound = FORWARD_GFLOP / peak * 1000
        results["forward"] = {"ms": ms, "sgemm_gflops": peak, "bound_ms": bound, "ratio_to_bound": ms / bound}
        if int8:  # each precision at one thread and at the CPU share, alternated so that load hits both alike
            results["precisions"] = {
                f"{precision}, {threads or 'all'} thread{'s' if threads != 1 else ''}": forward_ms(
                    model_dir, threads, precision
                )
                for threads in (1, 0)
                for precision in ("fp32", "int8")
            }
        results["load"] += Path("/proc/loadavg").read_text().split()[:3]
        base_reqs = [r for r in runtime_requirements() if not r.startswith("onnxruntime")] + ["torch"]
        results["disk_mb"] = {"project": dependency_mb(runtime_requirements()), "baseline": dependency_mb(base_reqs)}
        results["cost"] = {}
        for mem in (1024, 2048, 3008):
            pd, pc = cost_per_million(results["project"]["sizes"]["640x480"]["p50_ms"] / 1000, mem)
            bd, bc = cost_per_million(results["baseline"]["sizes"]["640x480"]["p50_ms"] / 1000, mem)
            results["cost"][str(mem)] = {"project_s": pd, "project_usd": pc, "baseline_s": bd, "baseline_usd": bc}
        print_table(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")


def _machine() -> str:
    import platform

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    cpus = len(os.sched_getaffinity(0))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {cpus} CPUs, {mem:.0f} GiB, Python {platform.python_version()}, Linux {platform.release()}"


if __name__ == "__main__":
    main()
