"""MiDaS_small depth estimation on AWS Lambda (ONNX Runtime; no torch at run time).

Importing the package is cheap; the model loads when ``handler.container`` is imported (once per container).
"""

import os

# ONNX Runtime owns the CPUs; NumPy's BLAS only does the small resizes around each inference. A second pool of
# BLAS threads would spin on the same cores between calls and slow the model down (docs/performance.md).
# Effective when set before NumPy is first imported, as it is on Lambda (the entry imports this package first).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# No pydantic plugins here: without this, the first model class scans every installed package's entry points for
# them (importlib.metadata), on every cold start.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
