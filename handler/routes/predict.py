"""POST /predict: a multipart upload (field ``image``) → the heatmap's URL, the MiDaS WebUI contract."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from handler.errors import InvalidRequest, UnsupportedMediaType, ValidationFailed
from handler.routes.bodies import MULTIPART_ENVELOPE, media_type, refuse_declared_length
from handler.routes.deps import Estimator, Store, run_blocking
from handler.routes.results import RenderRequest, respond
from handler.schemas import ERRORS, PredictResponse

router = APIRouter()


@router.post(
    "/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {"image": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def predict(request: Request, estimator: Estimator, store: Store) -> PredictResponse:
    """Multipart upload (field ``image``) → heatmap URL, the MiDaS WebUI contract."""
    settings = estimator.settings
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType("POST /predict expects multipart/form-data with a file field 'image'")
    limit = settings.max_image_bytes + MULTIPART_ENVELOPE
    refuse_declared_length(request, limit, "upload", settings.max_image_bytes)
    try:
        form = await request.form(max_files=1, max_fields=16)
    except StarletteHTTPException as exc:
        raise InvalidRequest(f"malformed multipart body: {exc.detail}") from None
    try:
        upload = form.get("image")
        if upload is None:
            raise ValidationFailed("multipart field 'image' is required")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed("multipart field 'image' must be a file upload, not a text field")
        data = await upload.read(settings.max_image_bytes + 1)
    finally:
        await form.close()
    source = {"source": "upload", "filename": upload.filename or ""}
    output = "s3" if settings.output_bucket else "inline"
    asked = RenderRequest(data, source, output, settings.default_colormap)
    res = await run_blocking(request, respond, estimator, store, asked)
    return PredictResponse(
        depth_map_url=res.depth_map_url or f"data:image/png;base64,{res.heatmap_png_base64}",
        inference_time=res.inference_time,
        model_version=res.model_version,
        width=res.width,
        height=res.height,
        s3=res.heatmap_s3,
    )
