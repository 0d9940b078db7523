"""Lambda entry: S3 events (direct or via SQS) to the S3 path, everything else (API Gateway v1/v2, Function URL)
to FastAPI through Mangum. Importing it loads the model once per container."""

from __future__ import annotations

# isort: off
from handler import runtime  # first: the model starts loading while the web stack below is imported

# isort: on
from mangum import Mangum

from handler import s3
from handler.http import create_app
from handler.logs import logger

estimator = runtime.wait_for_estimator()
store = runtime.store
app = create_app(estimator, store)
asgi_handler = Mangum(app, lifespan="off")  # lifespan would run on every invocation: the model is loaded above


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: object) -> dict:
    if s3.is_s3_event(event):
        return s3.handle_s3_event(event, estimator, store)
    if s3.is_sqs_event(event):
        return s3.handle_sqs_event(event, estimator, store)
    return asgi_handler(event, context)
