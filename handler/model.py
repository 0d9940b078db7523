"""The baked model: manifest check, one ONNX Runtime session per container, sized to the CPUs we may use."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from handler import contract
from handler.environment import variable
from handler.errors import ModelUnavailable

if TYPE_CHECKING:  # the loader itself needs no settings (handler.container starts it before they are read)
    from handler.config import Settings

# Lambda gives a function CPU time in proportion to its memory: one vCPU's worth at 1769 MB.
LAMBDA_MB_PER_VCPU = 1769


@dataclass(frozen=True)
class CpuShare:
    """How much CPU this process may use: the cores it sees and the share of them it is given."""

    cores: int  # the affinity mask: how many CPUs threads can run on
    share: float  # CPU time available, in cores (a quota or Lambda's memory share); == cores when unlimited

    @property
    def throttled(self) -> bool:
        return self.share < self.cores

    @property
    def threads(self) -> int:
        """ORT intra-op threads: the share rounded to whole cores (1.16 → 1, 1.7 → 2), at most the cores seen."""
        return max(1, min(self.cores, round(self.share)))

    @property
    def spinning(self) -> bool:
        """Idle ORT threads may busy-wait only on whole, unthrottled cores: under a quota the spin eats the time
        the next operator needs (docs/performance.md, the image at Lambda's CPU shares)."""
        return not self.throttled and self.threads > 1


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota in cores from cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us / cpu.cfs_period_us); None = none."""
    with contextlib.suppress(OSError, ValueError):
        quota, period = (root / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    for v1 in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
        with contextlib.suppress(OSError, ValueError):
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((v1 / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    return None


def cpu_share() -> CpuShare:
    """The CPUs this process may use: affinity, capped by a cgroup quota and by Lambda's memory-based share."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = float(cores)
    quota = cgroup_quota()
    if quota is not None:
        share = min(share, quota)
    memory_mb = variable("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or ""
    if memory_mb.isdigit() and int(memory_mb) > 0:  # Lambda shows 2+ vCPUs but throttles them to this share
        share = min(share, int(memory_mb) / LAMBDA_MB_PER_VCPU)
    return CpuShare(cores=max(1, cores), share=max(share, 0.01))


def _release_freed_heap() -> None:
    """Give the heap ORT freed while building the session back to the OS (idle RSS; glibc only)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to release
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class Manifest:
    """manifest.json as written by scripts/bake_weights.py."""

    data: dict[str, Any]

    @classmethod
    def read(cls, model_dir: Path) -> Manifest:
        path = model_dir / contract.MANIFEST_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelUnavailable(f"no {contract.MANIFEST_FILE} in {model_dir}: bake the model first") from None
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"unreadable {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ModelUnavailable(f"{path} is not a JSON object")
        missing = {"model", "onnx_file", "onnx_sha256", "checkpoint_sha256", "preprocessing"} - set(data)
        if missing:
            raise ModelUnavailable(f"{path} lacks {', '.join(sorted(missing))}")
        if data["preprocessing"] != contract.preprocessing():
            raise ModelUnavailable(f"{path} was baked for other preprocessing than this runtime implements")
        return cls(data)

    @property
    def version(self) -> str:
        return f"{self.data['model']}@{self.data['onnx_sha256'][:12]}"

    @property
    def test_weights(self) -> str | None:
        """:data:`contract.TEST_WEIGHTS_WARNING` for a model baked from test weights, else None."""
        return contract.TEST_WEIGHTS_WARNING if self.data.get("test_weights") is True else None


def _verified_session(
    files: dict[Path, str], threads: int, spinning: bool, pre_optimized: bool = False
) -> ort.InferenceSession:
    """The session of the model in ``files`` (the graph first, then any data file it reads: path → sha256) once
    every file's sha256 matched (a tampered or truncated model is never used).

    The files are hashed on a second thread while ORT builds the session (both release the GIL); the digests are
    judged first, and the session only returned once they all matched."""
    for path in files:
        if not path.is_file():
            raise ModelUnavailable(f"{path} is missing")
    graph = next(iter(files))
    options = contract.session_options(threads, spinning, pre_optimized)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-sha256") as pool:
        digests = {path: pool.submit(contract.sha256_file, path) for path in files}
        try:
            session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            failure = None
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            session, failure = None, ModelUnavailable(f"ONNX Runtime cannot load {graph}: {exc}")
        for path, sha256 in files.items():
            try:
                actual = digests[path].result()
            except OSError as exc:
                raise ModelUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
            if actual != sha256:
                raise ModelUnavailable(f"{path} sha256 {actual} does not match manifest {sha256}: refusing to start")
    if failure is not None:
        raise failure
    _release_freed_heap()
    return session


def _int8_session(
    model_dir: Path, manifest: Manifest, max_abs_rel: float, threads: int, spinning: bool
) -> ort.InferenceSession:
    """The bake's int8 model, past its fidelity gate (the error the bake measured against fp32 on held-out
    photographs) and its sha256 check; ModelUnavailable says why not."""
    entry = manifest.data.get("int8")
    if not isinstance(entry, dict):
        raise ModelUnavailable("the bake wrote no int8 model (scripts/bake_weights.py --precision int8)")
    try:
        abs_rel, path, sha256 = float(entry["abs_rel"]), model_dir / entry["file"], entry["sha256"]
        bits = entry.get("quantization", {}).get("weight_bits", 8)  # 8: a bake before 7-bit weights
        measured = entry.get("sums", "unknown")  # a bake before the sums were recorded
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelUnavailable(f"the manifest's int8 entry is malformed ({type(exc).__name__}: {exc})") from None
    # Both decide where the error holds: a value no bake writes is refused, not read as fewer bits or as a CPU kind.
    if type(bits) is not int or bits not in contract.INT8_WEIGHT_BITS:
        raise ModelUnavailable(
            f"the manifest's int8 entry is malformed (weight_bits {bits!r}, not one of {contract.INT8_WEIGHT_BITS})"
        )
    if measured not in contract.INT8_SUMS:
        raise ModelUnavailable(
            f"the manifest's int8 entry is malformed (sums {measured!r}, not one of {contract.INT8_SUMS})"
        )
    if not abs_rel <= max_abs_rel:
        raise ModelUnavailable(
            f"int8's abs_rel against fp32 on the bake's held-out photographs is {abs_rel:.4g}, "
            f"beyond MAX_INT8_ABS_REL {max_abs_rel:g}"
        )
    here = contract.int8_sums(contract.cpu_features(), bits)
    if not contract.int8_error_holds(measured, here):
        raise ModelUnavailable(
            f"int8's error was measured on a CPU whose int8 sums are {measured}; this CPU's are {here} (x86 without "
            f"VNNI: ONNX Runtime's kernels may saturate {bits}-bit weights), so the measured error does not hold here; "
            "bake the int8 model again (7-bit weights: its error holds on every CPU)"
        )
    return _verified_session({path: sha256}, threads, spinning)


def model_options(values: Mapping[str, Any]) -> tuple[str, int, bool | None, str, float]:
    """:meth:`DepthModel.load`'s arguments from the settings by field name: ``Settings.model_dump()``, or the
    environment as :mod:`handler.container`'s early load finds it (raw strings, so only when no numeric or boolean
    field is set there); a field absent takes its ``Settings`` default."""
    return (
        values.get("model_dir") or contract.IMAGE_MODEL_DIR,
        values.get("ort_threads", 0),
        values.get("ort_spinning"),
        values.get("model_precision", "fp32"),
        values.get("max_int8_abs_rel", contract.MAX_INT8_ABS_REL),
    )


def _rebuilt_session(model_dir: Path, manifest: Manifest, threads: int, spinning: bool) -> ort.InferenceSession:
    """The portable model where the image ships its frame instead of model.onnx (one copy of the weights): rebuilt
    from the frame and the optimised graph's weights, and used only if the bytes are model.onnx's (its sha256)."""
    path = model_dir / manifest.data["onnx_file"]
    try:
        model_bytes = contract.rebuild_portable(model_dir, manifest.data["optimized"])
    except OSError as exc:
        raise ModelUnavailable(f"cannot rebuild {path}: {exc.strerror or exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelUnavailable(f"cannot rebuild {path}: malformed frame entry ({type(exc).__name__}: {exc})") from None
    actual = hashlib.sha256(model_bytes).hexdigest()
    if actual != manifest.data["onnx_sha256"]:
        raise ModelUnavailable(
            f"{path} rebuilt from its frame has sha256 {actual}, not the manifest's {manifest.data['onnx_sha256']}: "
            "refusing to start"
        )
    options = contract.session_options(threads, spinning)
    try:
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        raise ModelUnavailable(f"ONNX Runtime cannot load the rebuilt {path}: {exc}") from None
    del model_bytes
    _release_freed_heap()
    return session


@dataclass
class DepthModel:
    """One ORT session for the container's lifetime; ``infer`` is the forward pass only."""

    manifest: Manifest
    session: ort.InferenceSession
    threads: int
    load_seconds: float
    variant: str = "portable"  # which file: the bake's optimised graph, or the portable model.onnx
    variant_note: str = ""  # why not the optimised graph, when the portable one is used
    precision: str = "fp32"  # the weights served: fp32, or the bake's int8 model past its fidelity gate
    precision_note: str = ""  # why fp32, when int8 was asked for
    runs: int = 0  # images inferred so far in this container
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        threads: int = 0,
        spinning: bool | None = None,
        precision: str = "fp32",
        max_int8_abs_rel: float = contract.MAX_INT8_ABS_REL,
    ) -> DepthModel:
        """Verify the model against its manifest's sha256, then create the session.

        The bake's optimised graph (:data:`contract.OPTIMIZED_FILE`) when the manifest has one that fits here: the
        same ONNX Runtime version and CPU vector features as the bake, and its probe output equal to the portable
        model's. Else ``model.onnx``, optimised at load (a slower start); ``variant_note`` says why.

        Args:
            model_dir: directory holding model.onnx and manifest.json from the bake.
            threads: intra-op threads; 0 = the CPU share rounded to whole cores (:class:`CpuShare`).
            spinning: let idle ORT threads busy-wait for the next operator (ORT's default): faster on whole
                cores; wasteful where the CPU is a time-sliced fraction of a core.
                None = only on whole, unthrottled cores.
            precision: "int8" serves the bake's int8 model (verified like the others) when its recorded abs_rel
                against fp32 is within ``max_int8_abs_rel``; else fp32, and ``precision_note`` says why.
        """
        started = time.perf_counter()
        model_dir = Path(model_dir)
        manifest = Manifest.read(model_dir)
        share = cpu_share()
        threads = threads or share.threads
        spinning = share.spinning if spinning is None else spinning
        precision_note = ""
        if precision == "int8":
            try:
                session = _int8_session(model_dir, manifest, max_int8_abs_rel, threads, spinning)
                return cls(manifest, session, threads, time.perf_counter() - started, "int8", precision="int8")
            except ModelUnavailable as exc:
                precision_note = str(exc)
        model = cls._fp32(model_dir, manifest, threads, spinning)
        model.load_seconds, model.precision_note = time.perf_counter() - started, precision_note
        return model

    @classmethod
    def _fp32(cls, model_dir: Path, manifest: Manifest, threads: int, spinning: bool) -> DepthModel:
        """The fp32 model: the bake's optimised graph where it fits, else model.onnx (as is, or rebuilt)."""
        note = "the bake wrote no optimised graph"
        if optimized := manifest.data.get("optimized"):
            try:
                session = cls._optimized_session(model_dir, optimized, threads, spinning)
                return cls(manifest, session, threads, 0.0, variant="optimized")
            except ModelUnavailable as exc:
                note = str(exc)
            except (KeyError, TypeError, ValueError) as exc:  # a malformed "optimized" entry: not worth a failed start
                note = f"the manifest's optimised graph entry is malformed ({type(exc).__name__}: {exc})"
        portable = model_dir / manifest.data["onnx_file"]
        if not portable.exists() and isinstance(optimized, dict) and "portable_frame" in optimized:
            session = _rebuilt_session(model_dir, manifest, threads, spinning)
            note += f"; {portable.name} rebuilt from {contract.PORTABLE_FRAME_FILE} and the optimised graph's weights"
        else:
            session = _verified_session({portable: manifest.data["onnx_sha256"]}, threads, spinning)
        return cls(manifest, session, threads, 0.0, variant_note=note)

    @staticmethod
    def _optimized_session(model_dir: Path, optimized: dict, threads: int, spinning: bool) -> ort.InferenceSession:
        if optimized.get("onnxruntime") != ort.__version__:
            raise ModelUnavailable(f"optimised by ONNX Runtime {optimized.get('onnxruntime')}, not {ort.__version__}")
        if optimized.get("cpu_features") != contract.cpu_features():
            raise ModelUnavailable("optimised on a CPU with other vector features than this one")
        files = {model_dir / optimized["file"]: optimized["sha256"]}
        if optimized.get("data_file"):  # the weights ORT maps from their own file
            files[model_dir / optimized["data_file"]] = optimized["data_sha256"]
        session = _verified_session(files, threads, spinning, pre_optimized=True)
        expected = np.frombuffer(base64.b64decode(optimized["probe_output"]), dtype="<f4")
        (actual,) = session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: contract.probe_input()})
        error = float(np.max(np.abs(actual.ravel() - expected))) if actual.size == expected.size else np.inf
        if not error <= contract.PROBE_TOLERANCE * max(float(np.ptp(expected)), 1e-12):
            raise ModelUnavailable(f"{next(iter(files))} does not reproduce the portable model's output here")
        return session

    @classmethod
    def from_settings(cls, settings: Settings) -> DepthModel:
        """:meth:`load` with the model directory and thread options of ``settings``."""
        return cls.load(*model_options(settings.model_dump()))

    def infer(self, net_input: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 → (h, w) float32 relative inverse depth."""
        (out,) = self.session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: net_input})
        with self._lock:  # requests run on several threads under uvicorn
            self.runs += 1
        return out[0]

    @property
    def version(self) -> str:
        return self.manifest.version
