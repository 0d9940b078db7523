"""The HTTP API's routes, one module per resource (pages, docs, health, predict, depth), each an ``APIRouter``.

Routes reach the estimator and the S3 store through the dependencies in ``deps``; ``handler.app`` assembles them.
"""
