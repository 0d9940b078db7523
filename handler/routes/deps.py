"""What routes need from the app, as FastAPI dependencies: the estimator and the S3 store ``create_app`` was given.

``async`` on purpose: FastAPI runs plain ``def`` dependencies in its thread pool, a hop per request for a lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from handler.estimator import DepthEstimator
from handler.s3_store import S3Store


async def get_estimator(request: Request) -> DepthEstimator:
    """The app's estimator (``app.state.estimator``)."""
    return request.app.state.estimator


async def get_store(request: Request) -> S3Store:
    """The app's S3 store (``app.state.store``)."""
    return request.app.state.store


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
