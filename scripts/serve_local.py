"""`make serve`: the whole function on one machine — the API and web page, an S3 emulator and its upload trigger.

- The API on 127.0.0.1:PORT (default 8000): the same FastAPI app the Lambda entry wraps.
- An S3 emulator (moto server) on 127.0.0.1:S3_PORT (default 9000) with the buckets midas-input and midas-output.
- The upload trigger wired as the deployed stack's queue mode: the input bucket notifies an SQS queue (the
  emulator's own bucket notifications) for objects under uploads/, and a poller hands each batch of messages to the
  Lambda entry (handler.entry.lambda_handler) as Lambda's SQS event source does: messages the function reports in
  batchItemFailures are retried (visibility timeout) and dropped, with a log line, after MAX_RECEIVES deliveries.

Bakes layer/model/ first if there is none (official URL, or BAKE_CHECKPOINT=path / BAKE_SHA256=hex).
Environment: PORT, S3_PORT, MODEL_DIR (default layer/model).
"""

from localdev.serve import main

if __name__ == "__main__":
    main()
