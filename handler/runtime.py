"""The container's singletons, created at import (Lambda's init phase): settings, the model, the S3 store.

Importing this module *is* the cold start's model load; nothing here runs per request.
"""

from __future__ import annotations

from pydantic import ValidationError

from handler.config import Settings, get_settings
from handler.core import DepthEstimator
from handler.errors import ModelUnavailable
from handler.logs import logger
from handler.s3io import S3Store


def build_estimator(settings: Settings) -> DepthEstimator:
    """Load and verify the baked model for ``settings``; logs one clear line and re-raises if it cannot."""
    try:
        estimator = DepthEstimator.load(settings)
    except ModelUnavailable as exc:
        logger.critical(f"refusing to start: {exc}")
        raise
    model = estimator.model
    logger.info(
        "model loaded",
        extra={"model_version": model.version, "threads": model.threads, "seconds": round(model.load_seconds, 3)},
    )
    return estimator


try:
    settings = get_settings()
except ValidationError as exc:
    logger.critical(f"refusing to start: invalid configuration: {exc}")
    raise
estimator = build_estimator(settings)
store = S3Store()
