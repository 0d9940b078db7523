"""Lambda entry: routes each event by its source (``handler.events``): HTTP events (API Gateway REST and HTTP APIs,
Function URL, ALB) to FastAPI through Mangum; S3 events (direct, via EventBridge, or either via SQS) to the S3 path;
S3 Batch Operations jobs to the batch path; and refuses the rest. Each invocation ends by printing the metrics it
recorded (``handler.metrics``). Importing it loads the model once per container.

The web stack (FastAPI, Starlette, Mangum: about a third of a second of imports) is built on the first HTTP event,
not at import: a container that only ever sees S3 events never pays for it.
"""

from __future__ import annotations

from functools import lru_cache

# isort: off
from handler import container  # first: the model starts loading while the modules below are imported

# isort: on
from handler import batch, events, metrics, s3
from handler.logs import logger

estimator = container.wait_for_estimator()
store = container.store


@lru_cache(maxsize=1)
def http_app():  # noqa: ANN201  (a FastAPI app; its type would import the web stack here)
    """The FastAPI app around the container's estimator and store, made once, on first use."""
    from handler.app import create_app

    return create_app(estimator, store)


@lru_cache(maxsize=1)
def http_events():  # noqa: ANN201
    """The app behind Mangum (``handler.http_events``), made once, on the first HTTP event."""
    from handler.http_events import HttpEvents

    return HttpEvents(http_app())


ROUTES = {
    "http": lambda event, context: http_events()(event, context),
    "s3": lambda event, context: s3.handle_s3_event(event, estimator, store),
    "sqs": lambda event, context: s3.handle_sqs_event(event, estimator, store),
    "eventbridge-s3": lambda event, context: s3.handle_eventbridge_event(event, estimator, store),
    "s3-batch": lambda event, context: batch.handle_batch_event(event, estimator, store),
}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: object) -> dict:
    kind = events.event_kind(event)
    if kind not in ROUTES:
        error = events.refusal(kind, event, handled=ROUTES)
        logger.error("unsupported event source", extra={"source": kind, "reason": str(error)})
        raise error
    try:
        return ROUTES[kind](event, context)
    finally:
        metrics.flush()
