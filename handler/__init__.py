"""MiDaS_small depth estimation on AWS Lambda (ONNX Runtime; no torch at run time).

Importing the package is cheap; the model loads when ``handler.model`` is imported (once per container).
"""
