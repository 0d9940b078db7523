"""Local development tooling: the pieces of AWS that ``make serve``, ``make invoke-s3``, the soak, the benchmarks and
the tests emulate, defined once so that scripts and tests build the same events and environments the same way.

Never part of the image (the Dockerfile copies ``handler/`` alone) and never imported by ``handler/``. It works in a
checkout: it reads the repository's files (``events/``, ``tests/events/``, ``requirements-serve.txt``, the tracked
files of an image build). The package itself imports nothing; ``localdev.function`` (the Lambda context) is stdlib
only, so a probe of the function's own imports can use it.
"""
