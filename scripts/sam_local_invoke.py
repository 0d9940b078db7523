"""`make sam-invoke IMAGE=photo.jpg`: the image `sam build` built, under ``sam local invoke``, on an upload's S3,
EventBridge and SQS events, against moto's server on a Docker network (no LocalStack). Run from the repository root
after ``sam build``; the code and its description: localdev/sam_invoke.py.

    python scripts/sam_local_invoke.py IMAGE [--network midas-local] [--out out] [--events-dir out/sam-events]
"""

import sys

from localdev.sam_invoke import main

if __name__ == "__main__":
    sys.exit(main())
