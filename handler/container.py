"""The container's singletons, created at import (Lambda's init phase): settings, the model, the S3 store.

Importing this module starts loading the model (sha256 check, ONNX Runtime session) on a background thread as
early as it can — before the settings are validated, which needs pydantic's imports — and the imports that follow
go on meanwhile: hashing and ORT release the GIL. The early load reads its options through the settings' own
environment reader (``handler.environment``) in the usual case (MODEL_DIR, ORT's threads and spinning left to the
CPU share); once the settings are validated they must agree, or the model is loaded again with theirs.
:func:`wait_for_estimator` joins it; handler.entry calls it at import, so the entry's import — the cold start — still
ends with the model loaded and verified, once per container.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from handler.environment import environment
from handler.model import DepthModel, model_options

_found = environment()
# DepthModel.load's arguments: MODEL_DIR and MODEL_PRECISION as found, the rest their defaults; Settings validates
# them all below, and _model() loads again if they differ.
_early_options = model_options(_found)
_loading: Future[DepthModel] | None = None
if not {"ort_threads", "ort_spinning", "max_int8_abs_rel"} & set(_found):
    _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
    _loading = _pool.submit(DepthModel.load, *_early_options)
    _pool.shutdown(wait=False)  # the submitted load goes on; no other work will come

from pydantic import ValidationError  # noqa: E402  (imported while the model loads)

from handler.config import get_settings  # noqa: E402

try:
    settings = get_settings()
except ValidationError as exc:
    from handler.logs import logger

    logger.critical(f"refusing to start: invalid configuration: {exc}")
    raise

from handler.errors import ModelUnavailable  # noqa: E402
from handler.estimator import DepthEstimator  # noqa: E402
from handler.logs import logger  # noqa: E402
from handler.s3_store import S3Store  # noqa: E402

store = S3Store()


def _model() -> DepthModel:
    """The early load when the settings agree with its options; else a load with the settings' own."""
    if _loading is not None and model_options(settings.model_dump()) == _early_options:
        return _loading.result()
    return DepthModel.from_settings(settings)


def wait_for_estimator() -> DepthEstimator:
    """The container's estimator once its model is loaded; logs one clear line and re-raises if it cannot load."""
    try:
        model = _model()
    except ModelUnavailable as exc:
        logger.critical(f"refusing to start: {exc}")
        raise
    if model.precision_note:
        logger.warning(f"MODEL_PRECISION=int8, but serving fp32: {model.precision_note}")
    if model.variant_note and "optimized" in model.manifest.data:
        logger.warning(f"the bake's optimised graph is not used here: {model.variant_note}; loaded the portable model")
    logger.info(
        "model loaded",
        extra={
            "model_version": model.version,
            "variant": model.variant,
            "precision": model.precision,
            "threads": model.threads,
            "seconds": round(model.load_seconds, 3),
        },
    )
    return DepthEstimator(settings, model)
