"""Settings (the only reader of the environment) and the CLI's output names: pure functions, no model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from handler.config import Settings


def test_output_bases_never_share_a_file():
    from handler.__main__ import output_bases

    paths = [Path(p) for p in ("x/a.jpg", "y/a.jpg", "a.jpg.png", "q.depth.jpg", "q.jpg", "Q.JPG", "x/a.jpg")]
    bases = output_bases(paths, png16=True)
    assert list(bases.values()) == ["a.jpg", "a.jpg-2", "a.jpg-3", "q.depth", "q.jpg", "Q.JPG-2"]
    files = [f"{b}{s}".casefold() for b in bases.values() for s in (".png", ".pfm", ".depth.png")]
    assert len(files) == len(set(files))
    assert list(output_bases([Path("p.jpg"), Path("d/r.png")], png16=False).values()) == ["p", "r"]


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("ALLOWED_INPUT_BUCKETS", " a-bucket, b-bucket ,")
    monkeypatch.setenv("OUTPUT_PREFIX", "/heatmaps")
    monkeypatch.setenv("OUTPUT_BUCKET", "")
    settings = Settings()
    assert settings.allowed_input_buckets == frozenset({"a-bucket", "b-bucket"})
    assert settings.output_prefix == "heatmaps/" and settings.output_bucket is None


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"OUTPUT_PREFIX": "/"}, "output_prefix"),
        ({"MAX_IMAGE_BYTES": "0"}, "max_image_bytes"),
        ({"PRESIGNED_URL_TTL": "999999999"}, "presigned_url_ttl"),
        ({"DEFAULT_COLORMAP": "rainbow"}, "default_colormap"),
        ({"MAX_JSON_BYTES": str(20 * 1024 * 1024)}, "max_json_bytes"),
    ],
)
def test_invalid_settings_fail(monkeypatch, env, field):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=field):
        Settings()


def test_an_http_cap_above_the_s3_cap_is_capped():
    assert Settings(max_image_pixels=1000, max_http_image_pixels=5000).http_max_pixels == 1000
