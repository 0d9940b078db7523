"""Build time: the official MiDaS_small checkpoint → a verified ONNX model + manifest.json (needs torch).

``handler/`` never imports this package: the runtime image has no torch, and ships none of this code. Its modules:
the exact architecture (:mod:`bake.midas_net`), the checkpoint's sources and strict load (:mod:`bake.checkpoint`),
the ONNX export and its checks (:mod:`bake.onnx_export`), the whole bake into a model directory
(:mod:`bake.pipeline`) and its command line (:mod:`bake.cli`, run as ``scripts/bake_weights.py``); besides, for tests,
offline demos and the benchmark's baseline, an official-format checkpoint of seeded random values
(:mod:`bake.random_checkpoint`) and upstream's own CPU pipeline restated (:mod:`bake.upstream_reference`).
"""

from __future__ import annotations


class BakeError(Exception):
    """A failure reported as one line and a non-zero exit."""
