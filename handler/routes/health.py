"""GET /health: the model's identity and checksums, this container's warmth and limits (library versions only
when HEALTH_DETAILS is on: they tell an attacker which advisories apply; the cold-start log has them)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from handler.config import LAMBDA_MAX_RESPONSE_BYTES
from handler.imaging import SUPPORTED_FORMATS
from handler.routes.deps import Estimator

router = APIRouter(tags=["ops"])


@router.get("/health")
def health(request: Request, estimator: Estimator) -> dict[str, Any]:
    """Model identity and checksums, whether this container is warm, limits (versions with HEALTH_DETAILS)."""
    settings, model = estimator.settings, estimator.model
    manifest = model.manifest.data
    body: dict[str, Any] = {
        "status": "ok",
        "model": manifest["model"],
        "model_version": model.version,
        "checkpoint_sha256": manifest["checkpoint_sha256"],
        "onnx_sha256": manifest["onnx_sha256"],
        "opset": manifest.get("opset"),
        "precision": model.precision,
        "warm": model.runs > 0,
        "images_processed": model.runs,
        "model_load_seconds": round(model.load_seconds, 3),
        "uptime_seconds": round(time.time() - request.app.state.started_at, 1),
        "threads": model.threads,
        "output_bucket_configured": settings.output_bucket is not None,
        "limits": {
            "max_image_bytes": settings.max_image_bytes,
            # the caps of an RGB photo (a JPEG's); where a function's memory sets them, lower for some formats: the
            # trigger's at the upload function's memory, the HTTP API's at this function's
            "max_image_pixels": settings.trigger_pixel_cap(),
            "max_http_image_pixels": settings.pixel_cap(settings.http_max_pixels),
            "memory_mb": settings.aws_lambda_function_memory_size,
            "upload_memory_mb": settings.upload_memory_mb,
            "max_image_pixels_by_format": {
                name: settings.trigger_pixel_cap(image_format=name) for name in sorted(SUPPORTED_FORMATS)
            },
            "max_json_bytes": settings.max_json_bytes,
            "max_response_bytes": LAMBDA_MAX_RESPONSE_BYTES,
            "max_request_points": settings.max_request_points,
            "max_request_faces": settings.max_request_faces,
            "max_result_bytes": settings.max_result_bytes,
        },
    }
    if model.manifest.test_weights:
        body |= {"test_weights": True, "warning": model.manifest.test_weights}
    if settings.health_details:
        body["versions"] = versions(manifest)
    return body


def versions(manifest: dict[str, Any]) -> dict[str, Any]:
    """Python's and the main libraries' versions, and those the model was baked with."""
    import platform  # imported here: importlib.metadata is not worth its import on every cold start
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        **{name: version(name) for name in ("onnxruntime", "numpy", "fastapi", "mangum")},
        "baked_with": manifest.get("versions", {}),
    }
