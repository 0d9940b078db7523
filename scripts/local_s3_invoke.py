"""`make invoke-s3 IMAGE=photo.jpg`: upload an image to the emulator's input bucket, run the function on the S3 event.

The emulator is the one ``AWS_ENDPOINT_URL`` points at (e.g. LocalStack on http://localhost:4566), or, when it is
unset, a moto server started for this run (its objects vanish on exit, so outputs are downloaded locally). The
event is what S3 sends for the upload (events/s3-put.json with this bucket, key, size and ETag; the key
URL-encoded as S3 encodes it), and the function is the real Lambda entry (handler.entry.lambda_handler).

    python scripts/local_s3_invoke.py IMAGE [--key uploads/name.jpg] [--download DIR] [--event-out FILE]

Prints where the heatmap went. ``--event-out`` saves the event for ``sam local invoke -e FILE``.

``--serve`` (`make upload IMAGE=photo.jpg`) runs nothing here: it uploads to the running `make serve` stack
(``AWS_ENDPOINT_URL``, else http://127.0.0.1:$S3_PORT, default 9000) under uploads/, waits up to 60 s for the
heatmap its trigger writes under depth/, and saves it to ``--download``.

Exit codes: 0 written, 1 the function failed (or no heatmap in time), 2 bad input, no model or no stack.
"""

import sys

from localdev.invoke_s3 import main

if __name__ == "__main__":
    sys.exit(main())
