"""CloudWatch metrics in the embedded metric format (Powertools Metrics): at the end of an invocation that recorded
any, one JSON line on stdout that CloudWatch Logs turns into metrics. No API call and no extra package.

Per image (the S3-driven paths): ``Images<Outcome>`` (Written, Unchanged, Skipped, Failed), ``Megapixels`` and the
latency of each stage in milliseconds (``LatencyS3Get``, ``LatencyDecode``, ``LatencyInference``, ...,
``LatencyS3Put``, ``LatencyTotal``); per container, ``ColdStart`` on its first invocation. An HTTP invocation after
the first records nothing and prints nothing. Namespace: $POWERTOOLS_METRICS_NAMESPACE (read by ``Settings``), else
``MidasDepth``.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from handler.config import get_settings
from handler.logs import SERVICE

_lock = threading.Lock()  # one invocation at a time in Lambda; local servers and tests may run several
_cold_start = True


@lru_cache(maxsize=1)
def _recorder() -> Metrics:
    """The container's metrics, in the namespace the settings name (made on first use)."""
    return Metrics(namespace=get_settings().powertools_metrics_namespace, service=SERVICE)


def image(outcome: str, *, megapixels: float | None = None, seconds: dict[str, float] | None = None) -> None:
    """Record one image: its outcome, its size when it was read, and how long each stage took."""
    recorder = _recorder()
    with _lock:
        recorder.add_metric(name=f"Images{outcome.capitalize()}", unit=MetricUnit.Count, value=1)
        if megapixels is not None:
            recorder.add_metric(name="Megapixels", unit=MetricUnit.NoUnit, value=round(megapixels, 3))
        for stage, value in (seconds or {}).items():  # s3_get → LatencyS3Get
            name = "Latency" + stage.title().replace("_", "")
            recorder.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(value * 1000, 2))


def flush() -> None:
    """Print what this invocation recorded (and ``ColdStart`` on a container's first invocation), if anything."""
    global _cold_start
    recorder = _recorder()
    with _lock:
        if _cold_start:
            _cold_start = False
            recorder.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
        if recorder.metric_set:
            recorder.flush_metrics()
