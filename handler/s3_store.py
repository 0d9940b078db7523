"""S3 reads and writes with errors translated to the domain's (404/403/502/503); the client is made lazily.

The client is a plain ``boto3.client("s3")``: endpoint, region and credentials come from the environment
(``AWS_ENDPOINT_URL`` points it at LocalStack or moto locally), never from code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from handler.errors import DepthError, PayloadTooLarge, S3AccessDenied, S3BadGateway, S3ObjectNotFound, S3Unavailable

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccountProblem"}
_UNAVAILABLE = {"SlowDown", "ServiceUnavailable", "503", "RequestTimeout", "InternalError", "500"}


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    body: bytes
    etag: str


# ClientError codes → the domain error and its message
_CLIENT_ERRORS: tuple[tuple[set[str], type[DepthError], str], ...] = (
    (_NOT_FOUND, S3ObjectNotFound, "{where} does not exist"),
    (_DENIED, S3AccessDenied, "access to {where} was denied ({code})"),
    (_UNAVAILABLE, S3Unavailable, "S3 is temporarily unavailable for {where} ({code}); retry later"),
)


def translate(exc: Exception, bucket: str, key: str | None = None) -> DepthError:
    """botocore/boto3 exception → the domain error with a message that names the object, not our endpoint."""
    from botocore import exceptions as bx

    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, bx.ClientError):
        return _client_error(str(exc.response.get("Error", {}).get("Code", "")), bucket, where)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return S3BadGateway("the function has no AWS credentials for S3")
    if isinstance(exc, bx.ReadTimeoutError):
        return S3Unavailable(f"S3 did not answer in time for {where}; retry later")
    if isinstance(exc, bx.BotoCoreError | OSError):
        return S3Unavailable(f"S3 could not be reached for {where}; retry later")
    raise exc


def _client_error(code: str, bucket: str, where: str) -> DepthError:
    if code == "NoSuchBucket":
        return S3ObjectNotFound(f"bucket {bucket} does not exist")
    for codes, error, message in _CLIENT_ERRORS:
        if code in codes:
            return error(message.format(where=where, code=code))
    return S3BadGateway(f"S3 refused the request for {where} ({code or 'unknown error'})")


def _status(exc: Exception) -> int | None:
    """The HTTP status of a botocore ClientError (a HEAD or a 304 has no error code of its own), else None."""
    response = getattr(exc, "response", None)
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None


# A stalled S3 must fail a call inside API Gateway's 30 s, so that the caller gets our 503 and not the gateway's
# bare timeout: 3 attempts x (2 s to connect + 5 s to answer) + standard-mode backoff (< 3 s) ≈ 24 s at worst.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 3


class S3Store:
    """Get/put/delete/presign against S3 with one lazily created client per container."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._client: Any = None
        self._lock = threading.Lock()
        self._options = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
        self._max_attempts = max_attempts

    @property
    def client(self) -> Any:
        if self._client is None:  # boto3's import and the client's creation: paid only where S3 is used
            with self._lock:  # concurrent first requests (uvicorn's threads) must not build it twice
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        from handler.config import Settings

        # Read when the client is made, as boto3 reads its own endpoint then (an emulator started after import).
        custom_endpoint = Settings().s3_endpoint_url
        # Presigned URLs must name the bucket's region (bucket.s3.<region>.amazonaws.com): the global endpoint
        # redirects, which breaks SigV4 links to new buckets outside us-east-1. Emulators keep path style.
        addressing = {} if custom_endpoint else {"s3": {"addressing_style": "virtual"}}
        return boto3.session.Session().client(
            "s3",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": self._max_attempts},  # initial call included
                signature_version="s3v4",
                **addressing,
                **self._options,
            ),
        )

    def get(self, bucket: str, key: str, max_bytes: int, *, unless_etag: str | None = None) -> S3Object | None:
        """Read an object, refusing (413) before download when it is larger than ``max_bytes``.

        ``unless_etag``: None (nothing read) when the object's ETag is still this one (a conditional GET, answered
        304 Not Modified by S3 without a body).
        """
        conditions = {"IfNoneMatch": f'"{unless_etag}"'} if unless_etag else {}
        try:
            response = self.client.get_object(Bucket=bucket, Key=key, **conditions)
            size = int(response.get("ContentLength") or 0)
            if size > max_bytes:
                response["Body"].close()
                raise PayloadTooLarge(f"s3://{bucket}/{key} is {size} bytes; the limit is {max_bytes} bytes")
            body = response["Body"].read()
        except DepthError:
            raise
        except Exception as exc:
            if unless_etag and _status(exc) == 304:
                return None
            raise translate(exc, bucket, key) from None
        return S3Object(bucket, key, body, str(response.get("ETag", "")).strip('"'))

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """An object's ETag and user metadata (``{"etag": ..., "metadata": {...}}``), or None when it does not exist."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise translate(exc, bucket, key) from None
        return {"etag": str(response.get("ETag", "")).strip('"'), "metadata": response.get("Metadata") or {}}

    def put(self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> None:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata)
        except Exception as exc:
            raise translate(exc, bucket, key) from None

    def delete(self, bucket: str, key: str) -> None:
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise translate(exc, bucket, key) from None

    def presign(self, bucket: str, key: str, ttl: int) -> str:
        """A GET URL valid for ``ttl`` seconds (signed locally: no S3 call)."""
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl
            )
        except Exception as exc:
            raise translate(exc, bucket, key) from None
