"""MODEL_PRECISION and MAX_INT8_ABS_REL: read by Settings, the one reader of the environment, and validated."""

from __future__ import annotations

import pytest

from handler import contract
from handler.config import Settings
from handler.environment import environment
from handler.model import model_options


def test_settings_read_the_precision_and_the_gate(monkeypatch):
    monkeypatch.setenv("MODEL_PRECISION", "int8")
    monkeypatch.setenv("MAX_INT8_ABS_REL", "0.05")
    assert (Settings().model_precision, Settings().max_int8_abs_rel) == ("int8", 0.05)
    monkeypatch.delenv("MODEL_PRECISION")
    monkeypatch.delenv("MAX_INT8_ABS_REL")
    assert (Settings().model_precision, Settings().max_int8_abs_rel) == ("fp32", contract.MAX_INT8_ABS_REL)
    for name, value in (("MODEL_PRECISION", "fp16"), ("MAX_INT8_ABS_REL", "-1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name.lower()):
            Settings()
        monkeypatch.delenv(name)


@pytest.mark.parametrize("found", [{}, {"MODEL_DIR": "/opt/model", "MODEL_PRECISION": "int8"}])
def test_the_early_model_load_reads_the_options_the_settings_validate(monkeypatch, found):
    """The container starts loading the model from the raw environment before Settings exists: with only MODEL_DIR
    and MODEL_PRECISION set (or nothing), its options are the ones the validated settings give (no second load)."""
    for name in ("MODEL_DIR", "MODEL_PRECISION", "ORT_THREADS", "ORT_SPINNING", "MAX_INT8_ABS_REL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in found.items():
        monkeypatch.setenv(name, value)
    assert model_options(environment()) == model_options(Settings().model_dump())
