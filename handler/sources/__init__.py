"""The event sources the function handles, one module each: it recognises its events (``matches``) and adapts them
to the per-object job or the HTTP app and back to the answer its sender expects (``handle``).

``handler.entry`` walks its ordered list of them and lets the first match handle the event; ``handler.events``
names the sources it refuses. A new source is a module here and a line in the entry's list. What the S3-driven
sources share (settling outcomes into an answer) is in :mod:`handler.sources.settle`, below all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from handler.estimator import DepthEstimator
    from handler.s3_store import S3Store


class Source(Protocol):
    """What the entry needs of a source module."""

    NAME: str  # short name, in logs and refusals
    LABEL: str  # what it is, in the refusal's list of what the function handles

    def matches(self, event: Any) -> bool: ...

    def handle(self, event: Any, context: Any, *, estimator: DepthEstimator, store: S3Store) -> Any: ...
