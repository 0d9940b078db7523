"""Settings, the only reader of the environment: read, validated, capped."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from handler.config import Settings


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
