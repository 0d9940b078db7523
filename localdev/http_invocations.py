"""Each HTTP request ``make serve`` answers, logged as Lambda logs an invocation of the API function.

In Lambda, the entry's ``@logger.inject_lambda_context`` gives every log line of an invocation that invocation's
request id, and ``cold_start`` true on a container's first. ``make serve`` serves the FastAPI app with uvicorn, not
through the entry, so its log lines would carry whatever keys the upload trigger's last invocation of the entry left
on the shared logger. :class:`AsLambdaInvocations` gives each request the keys of an invocation of its own, in that
request's context only (the trigger's poller thread keeps its own): a new request id every time, and ``cold_start``
true for the first request the process answers only, as the deployed API function, whose containers are not the
upload function's, would log them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model

from handler.logs import logger
from localdev.function import LambdaContext


class AsLambdaInvocations:
    """ASGI middleware: the Lambda context keys of a new invocation on every log line of each HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cold = True  # flipped on the event loop's one thread: no lock needed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            cold, self.cold = self.cold, False
            keys = build_lambda_context_model(LambdaContext()).__dict__  # the keys inject_lambda_context writes
            # Context-local: this request's task and the worker threads it hands work to, never another request's.
            logger.thread_safe_append_keys(cold_start=cold, **keys)
        await self.app(scope, receive, send)
