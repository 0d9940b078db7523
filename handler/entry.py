"""Lambda entry: the first source in ``SOURCES`` whose ``matches(event)`` is true handles the event (HTTP through
FastAPI and Mangum; S3 notifications, EventBridge S3 events, either via SQS, and S3 Batch Operations jobs through
the per-object job); any other event is refused by name (``handler.events``). Each invocation ends by printing the
metrics it recorded (``handler.metrics``). Importing it loads the model once per container.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# isort: off
from handler import container  # first: the model starts loading while the modules below are imported

# isort: on
from handler import events, metrics
from handler.logs import logger
from handler.sources import Source, eventbridge_s3, http, s3_batch, s3_notification, sqs

if TYPE_CHECKING:
    from fastapi import FastAPI

estimator = container.wait_for_estimator()
store = container.store

# The order of the refusal's list of what the function handles; no two of these take the same event.
SOURCES: tuple[Source, ...] = (http, s3_notification, sqs, eventbridge_s3, s3_batch)


def http_app() -> FastAPI:
    """The FastAPI app around the container's estimator and store, for a server that streams request bodies
    (``uvicorn --factory handler.entry:http_app``, ``make serve``); Lambda's events go through ``http.app``."""
    from handler.app import create_app

    return create_app(estimator, store, streamed_bodies=True)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> Any:
    source = next((source for source in SOURCES if source.matches(event)), None)
    if source is None:
        error = events.refusal(event, handled=SOURCES)
        logger.error("unsupported event source", extra={"source": error.source, "reason": str(error)})
        raise error
    try:
        return source.handle(event, context, estimator=estimator, store=store)
    finally:
        metrics.flush()
