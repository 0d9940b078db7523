"""Domain errors and their one HTTP mapping: every client mistake is a 4xx with a JSON body naming the problem."""

from __future__ import annotations


class DepthError(Exception):
    """Base of every error the function reports to a caller (HTTP status + stable machine-readable code)."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, object]:
        return {"status": "error", "error": self.code, "message": self.message}


class InvalidRequest(DepthError):
    status_code, code = 400, "invalid_request"


class InvalidBase64(DepthError):
    status_code, code = 400, "invalid_base64"


class InvalidImage(DepthError):
    status_code, code = 400, "invalid_image"


class PayloadTooLarge(DepthError):
    status_code, code = 413, "payload_too_large"


class TooManyPixels(DepthError):
    """Over a path's pixel cap; ``pixels``, ``mode`` and ``image_format`` (when the count is the reason) let a caller
    say where such an image would be taken."""

    status_code, code = 413, "too_many_pixels"

    def __init__(
        self, message: str, *, pixels: int | None = None, mode: str = "RGB", image_format: str | None = None
    ) -> None:
        super().__init__(message)
        self.pixels, self.mode, self.image_format = pixels, mode, image_format


class ImageTooLarge(DepthError):
    """An image whose decode and renderings would not fit in the function's memory (the memory-derived pixel cap)."""

    status_code, code = 413, "image_too_large"


class TooComplex(DepthError):
    """An image whose decode would cost far more than its pixels (a progressive JPEG's thousands of scans)."""

    status_code, code = 413, "image_too_complex"


class UnsupportedMediaType(DepthError):
    status_code, code = 415, "unsupported_media_type"


class ValidationFailed(DepthError):
    status_code, code = 422, "validation_error"


class EmptyGeometry(DepthError):
    """A point cloud without points or a mesh without triangles: no valid glTF holds one, so none is written."""

    status_code, code = 422, "empty_point_cloud"


class AuthenticationRequired(DepthError):
    status_code, code = 403, "authentication_required"


class BucketNotAllowed(DepthError):
    status_code, code = 403, "bucket_not_allowed"


class KeyNotAllowed(DepthError):
    status_code, code = 403, "key_not_allowed"


class S3AccessDenied(DepthError):
    status_code, code = 403, "s3_access_denied"


class S3ObjectNotFound(DepthError):
    status_code, code = 404, "s3_object_not_found"


class S3BadGateway(DepthError):
    status_code, code = 502, "s3_error"


class S3Unavailable(DepthError):
    status_code, code = 503, "s3_unavailable"


class OutputNotConfigured(DepthError):
    status_code, code = 400, "output_bucket_not_configured"


class ModelUnavailable(Exception):
    """The baked model is missing or does not match its manifest: the container must not start."""


class UnsupportedEvent(Exception):
    """An event from a source this function is not wired to (see ``handler.events``): raised so that the invocation
    fails and the sender's retries / dead-letter queue keep the event; the message names the source."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source
