"""`make stack`: the stack `sam build` wrote (.aws-sam/build/template.yaml) deployed into LocalStack community on this
machine, until Ctrl-C deletes the stack, stops LocalStack and removes its Lambda containers.

    .venv/bin/python scripts/stack.py [--port 4599] [--stack-name midas-depth] [Parameter=Value ...]

docs/local-aws.md#the-stack-in-localstack; the code is localdev/stack.py.
"""

import sys

from localdev.stack import main

if __name__ == "__main__":
    sys.exit(main())
