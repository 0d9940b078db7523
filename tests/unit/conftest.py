"""The unit scope's guard: no torch, no OpenCV, no ONNX tooling, no ONNX Runtime session, no network.

Unit tests check pure functions against recorded or computed expectations (``make unit``, seconds). While a unit
test module is imported and while a unit test runs, importing one of :data:`FORBIDDEN` fails as if it were not
installed (what it is in a venv built from requirements.txt alone), creating an ONNX Runtime session (a baked
model) fails, and so does opening a network connection; every such attempt also fails the test by name, even where
the code under test catches the ImportError. Modules the rest of the suite imported before stay loaded for it:
they are only hidden while a unit test runs.
"""

from __future__ import annotations

import importlib.abc
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# torch and its architecture (the bake), OpenCV (the upstream reference), ONNX (export), moto (an S3 endpoint).
FORBIDDEN = frozenset({"torch", "torchvision", "timm", "geffnet", "cv2", "onnx", "onnxscript", "moto"})


class ForbiddenInUnitTests(ModuleNotFoundError):
    """Raised for what the unit scope must not use (a ModuleNotFoundError: optional imports behave as uninstalled)."""


class _Refuser(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in FORBIDDEN:
            self.attempts.append(f"import {fullname}")
            raise ForbiddenInUnitTests(f"tests/unit may not import {fullname}", name=fullname)
        return None


@contextmanager
def _unit_scope() -> Iterator[_Refuser]:
    refuser = _Refuser()
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.partition(".")[0] in FORBIDDEN}
    sys.meta_path.insert(0, refuser)
    patch = pytest.MonkeyPatch()

    def refuse(what: str):
        def refused(*args, **kwargs):
            refuser.attempts.append(what)
            raise ForbiddenInUnitTests(f"tests/unit may not use {what}")

        return refused

    patch.setattr(socket.socket, "connect", refuse("the network (socket.connect)"))
    patch.setattr(socket.socket, "connect_ex", refuse("the network (socket.connect_ex)"))
    onnxruntime = sys.modules.get("onnxruntime")
    if onnxruntime is None:
        try:
            import onnxruntime
        except ImportError:
            onnxruntime = None
    if onnxruntime is not None:
        patch.setattr(onnxruntime, "InferenceSession", refuse("an ONNX Runtime session (a baked model)"))
    try:
        yield refuser
    finally:
        patch.undo()
        sys.meta_path.remove(refuser)
        sys.modules.update(hidden)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A unit test module's own imports go through the guard too."""
    with _unit_scope() as refuser:
        report = yield
    if refuser.attempts and report.passed:
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid}: outside the unit scope: {', '.join(refuser.attempts)}"
    return report


@pytest.fixture(autouse=True)
def unit_scope():
    with _unit_scope() as refuser:
        yield
    assert not refuser.attempts, f"outside the unit scope: {', '.join(refuser.attempts)}"
