"""What routes need from the app, as FastAPI dependencies: the estimator and the S3 store ``create_app`` was given,
and how the caller was authenticated.

``async`` on purpose: FastAPI runs plain ``def`` dependencies in its thread pool, a hop per request for a lookup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from handler.estimator import DepthEstimator
from handler.s3_store import S3Store
from handler.sources.http import authenticated_by


async def get_estimator(request: Request) -> DepthEstimator:
    """The app's estimator (``app.state.estimator``)."""
    return request.app.state.estimator


async def get_store(request: Request) -> S3Store:
    """The app's S3 store (``app.state.store``)."""
    return request.app.state.store


async def get_authentication(request: Request) -> str | None:
    """How the caller was authenticated, or None (anonymous). Through Lambda (Mangum puts the event in the scope as
    ``aws.event``) only the event's authorizer counts (``handler.sources.http.authenticated_by``). Served directly by
    a local server (``make serve``), a request from the loopback address counts as the local user's own, and only
    where the settings say so (TRUST_LOOPBACK_CALLERS): a deployed function always gets its requests through
    Lambda, so nothing a remote caller sends reaches this branch."""
    event = request.scope.get("aws.event")
    if event is not None:
        return authenticated_by(event)
    settings = request.app.state.estimator.settings
    return "loopback" if settings.trust_loopback_callers and _is_loopback(request.client) else None


def _is_loopback(client: object) -> bool:
    try:
        return ipaddress.ip_address(client.host).is_loopback  # type: ignore[union-attr]
    except (AttributeError, ValueError):  # no client (a Unix socket), or a name rather than an address
        return False


T = TypeVar("T")


async def run_blocking(request: Request, work: Callable[..., T], *args: object) -> T:
    """Blocking work (inference, S3 calls) for a route. Under a server (uvicorn) on the thread pool, so that other
    requests go on meanwhile. In a Lambda invocation (Mangum puts the event in the scope) right here: the
    invocation is the only request its event loop runs, and the hop would start a new worker thread per
    invocation (anyio's workers end with Mangum's task)."""
    if "aws.event" in request.scope:
        return work(*args)
    return await run_in_threadpool(work, *args)


Estimator = Annotated[DepthEstimator, Depends(get_estimator)]
Store = Annotated[S3Store, Depends(get_store)]
Authentication = Annotated[str | None, Depends(get_authentication)]
