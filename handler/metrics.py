"""CloudWatch metrics in the embedded metric format (Powertools Metrics): at the end of an invocation that recorded
any, one JSON line on stdout that CloudWatch Logs turns into metrics. No API call and no extra package.

Per image (the S3-driven paths): ``Images<Outcome>`` (Written, Unchanged, Skipped, Failed), ``Megapixels`` and the
latency of each stage in milliseconds (``LatencyS3Get``, ``LatencyDecode``, ``LatencyInference``, ...,
``LatencyS3Put``, ``LatencyTotal``); per container, ``ColdStart`` on its first invocation. An HTTP invocation after
the first records nothing and prints nothing. Namespace: $POWERTOOLS_METRICS_NAMESPACE, else ``MidasDepth``.
"""

from __future__ import annotations

import os
import threading

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from handler.logs import SERVICE

DEFAULT_NAMESPACE = "MidasDepth"
_metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE, service=SERVICE)
_lock = threading.Lock()  # one invocation at a time in Lambda; local servers and tests may run several
_cold_start = True


def image(outcome: str, *, megapixels: float | None = None, seconds: dict[str, float] | None = None) -> None:
    """Record one image: its outcome, its size when it was read, and how long each stage took."""
    with _lock:
        _metrics.add_metric(name=f"Images{outcome.capitalize()}", unit=MetricUnit.Count, value=1)
        if megapixels is not None:
            _metrics.add_metric(name="Megapixels", unit=MetricUnit.NoUnit, value=round(megapixels, 3))
        for stage, value in (seconds or {}).items():  # s3_get → LatencyS3Get
            name = "Latency" + stage.title().replace("_", "")
            _metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(value * 1000, 2))


def flush() -> None:
    """Print what this invocation recorded (and ``ColdStart`` on a container's first invocation), if anything."""
    global _cold_start
    with _lock:
        if _cold_start:
            _cold_start = False
            _metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        if _metrics.metric_set:
            _metrics.flush_metrics()
