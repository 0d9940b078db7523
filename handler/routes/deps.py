"""What routes need from the app, as FastAPI dependencies: the estimator and the S3 store ``create_app`` was given.

``async`` on purpose: FastAPI runs plain ``def`` dependencies in its thread pool, a hop per request for a lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from handler.core import DepthEstimator
from handler.s3io import S3Store


async def get_estimator(request: Request) -> DepthEstimator:
    """The app's estimator (``app.state.estimator``)."""
    return request.app.state.estimator


async def get_store(request: Request) -> S3Store:
    """The app's S3 store (``app.state.store``)."""
    return request.app.state.store


Estimator = Annotated[DepthEstimator, Depends(get_estimator)]
Store = Annotated[S3Store, Depends(get_store)]
