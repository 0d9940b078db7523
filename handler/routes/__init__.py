"""The HTTP API's routes, one module per resource (pages, docs, health, predict, depth), each an ``APIRouter``.

Routes reach the estimator and the S3 store through the dependencies in ``deps``; ``handler.app`` assembles them.
What /predict and /depth share is in ``bodies`` (reading request bodies within limits) and ``results`` (rendering
and placing a result); their schemas are ``handler.schemas``.
"""
