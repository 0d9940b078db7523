"""The container's singletons, created at import (Lambda's init phase): settings, the model, the S3 store.

Importing this module validates the settings and starts loading the model (sha256 check, ONNX Runtime session)
on a background thread as early as it can: hashing and ORT release the GIL, so the imports that follow (the rest
of the core, the web stack in handler.entry) go on meanwhile (~0.1 s off a cold start). :func:`wait_for_estimator`
joins it; handler.entry calls it at import, so the entry's import — the cold start — still ends with the model
loaded and verified, once per container.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError

from handler.config import get_settings
from handler.model import DepthModel

try:
    settings = get_settings()
except ValidationError as exc:
    from handler.logs import logger

    logger.critical(f"refusing to start: invalid configuration: {exc}")
    raise

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
_loading = _pool.submit(DepthModel.from_settings, settings)
_pool.shutdown(wait=False)  # the submitted load goes on; no other work will come

from handler.core import DepthEstimator  # noqa: E402  (imported while the model loads)
from handler.errors import ModelUnavailable  # noqa: E402
from handler.logs import logger  # noqa: E402
from handler.s3io import S3Store  # noqa: E402

store = S3Store()


def wait_for_estimator() -> DepthEstimator:
    """The container's estimator once its model is loaded; logs one clear line and re-raises if it cannot load."""
    try:
        model = _loading.result()
    except ModelUnavailable as exc:
        logger.critical(f"refusing to start: {exc}")
        raise
    if model.variant_note and "optimized" in model.manifest.data:
        logger.warning(f"the bake's optimised graph is not used here: {model.variant_note}; loaded the portable model")
    logger.info(
        "model loaded",
        extra={
            "model_version": model.version,
            "variant": model.variant,
            "threads": model.threads,
            "seconds": round(model.load_seconds, 3),
        },
    )
    return DepthEstimator(settings, model)
