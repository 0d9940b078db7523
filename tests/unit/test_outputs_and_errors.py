"""Output keys and metadata, the one read rule, the error map and the security headers: pure functions, no S3."""

from __future__ import annotations

import json

import pytest

from handler import errors
from handler.app import error_response
from handler.config import Settings
from handler.headers import API_POLICY, api_headers, page_policy
from handler.s3_outputs import (
    MAX_METADATA_VALUE,
    has_parent_segments,
    is_own_output,
    output_key,
    s3_metadata,
    upload_renderings,
)


@pytest.mark.parametrize(
    ("rendering", "key"),
    [
        ("heatmap", "depth/uploads/a.jpg.png"),
        ("depth_png16", "depth/uploads/a.jpg.depth.png"),
        ("pfm", "depth/uploads/a.jpg.pfm"),
        ("ply", "depth/uploads/a.jpg.ply"),
        ("glb", "depth/uploads/a.jpg.glb"),
    ],
)
def test_every_output_key_is_prefix_whole_stem_and_suffix(rendering, key):
    assert output_key("depth/", "uploads/a.jpg", rendering) == key


def test_an_upload_and_its_namesake_of_another_format_get_outputs_of_their_own():
    assert output_key("depth/", "uploads/a.jpg", "heatmap") != output_key("depth/", "uploads/a.png", "heatmap")


@pytest.mark.parametrize(
    "key", ["..", "../etc/passwd", "a/../b.jpg", "uploads/../escape.jpg", "hardening/../../etc/passwd", "uploads/.."]
)
def test_a_key_with_a_parent_segment_is_refused_by_every_entry(key):
    assert has_parent_segments(key)


@pytest.mark.parametrize(
    "key", ["uploads/a.jpg", "a..b.jpg", "uploads/.../x.jpg", "uploads/..a/x.jpg", "./a.jpg", "up/%2e%2e/d.jpg", ""]
)
def test_a_key_whose_dots_are_part_of_a_name_is_a_name(key):
    assert not has_parent_segments(key)


def test_own_outputs_are_the_output_buckets_keys_under_the_output_prefix():
    settings = Settings(output_bucket="out", output_prefix="depth/")
    assert is_own_output(settings, "out", output_key("depth/", "uploads/a.jpg", "heatmap"))
    assert not is_own_output(settings, "out", "uploads/a.jpg")
    assert not is_own_output(settings, "in", "depth/uploads/a.jpg.png")


def test_metadata_is_ascii_and_a_value_too_long_is_recorded_by_its_digest():
    metadata = s3_metadata(source_key="uploads/café terrace.jpg", long_value="é" * 300)
    assert metadata["source-key"] == "uploads/caf%C3%A9 terrace.jpg"
    assert metadata["long-value"].startswith("sha256:") and len(metadata["long-value"]) == len("sha256:") + 64
    assert all(value.isascii() and len(value) <= MAX_METADATA_VALUE for value in metadata.values())


@pytest.mark.parametrize(
    ("fields", "renderings"),
    [
        ({}, ("heatmap",)),
        ({"write_raw_depth": True}, ("heatmap", "pfm")),
        ({"write_raw_depth": True, "write_point_cloud": "glb"}, ("heatmap", "pfm", "glb")),
        ({"write_point_cloud": "ply"}, ("heatmap", "ply")),
    ],
)
def test_what_the_trigger_writes_of_an_upload(fields, renderings):
    assert upload_renderings(Settings(**fields)) == renderings


@pytest.mark.parametrize(
    ("bucket", "key", "by_api", "refusal"),
    [
        ("in", "uploads/a.jpg", False, None),
        ("in", "uploads/a.jpg", True, None),
        ("other", "uploads/a.jpg", False, errors.BucketNotAllowed),
        ("other", "uploads/a.jpg", True, errors.BucketNotAllowed),
        ("in", "private/a.jpg", False, errors.KeyNotAllowed),
        ("in", "private/a.jpg", True, errors.KeyNotAllowed),
    ],
)
def test_one_read_rule_for_the_trigger_and_the_api(bucket, key, by_api, refusal):
    found = Settings(allowed_input_buckets="in").may_read(bucket, key, by_api=by_api)
    assert found is None if refusal is None else type(found) is refusal


def test_configured_prefixes_widen_only_what_the_api_may_read():
    settings = Settings(allowed_input_buckets="in", allowed_input_prefixes="shared/,uploads/")
    assert settings.may_read("in", "shared/a.jpg", by_api=True) is None
    assert isinstance(settings.may_read("in", "shared/a.jpg"), errors.KeyNotAllowed)


DOMAIN_ERRORS = [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.DepthError)]


def test_every_domain_error_has_its_own_code_and_a_4xx_unless_s3_failed():
    codes = [cls.code for cls in DOMAIN_ERRORS if cls is not errors.DepthError]
    assert len(codes) == len(set(codes)) >= 14
    for cls in DOMAIN_ERRORS:
        assert 400 <= cls.status_code < 500 or cls in (errors.S3BadGateway, errors.S3Unavailable), cls
    assert (errors.S3BadGateway.status_code, errors.S3Unavailable.status_code) == (502, 503)


@pytest.mark.parametrize("cls", DOMAIN_ERRORS)
def test_the_error_map_answers_status_json_naming_the_problem_and_the_security_headers(cls):
    response = error_response(cls("what went wrong"), "/depth")
    assert response.status_code == cls.status_code
    assert json.loads(response.body) == {"status": "error", "error": cls.code, "message": "what went wrong"}
    assert response.headers["content-type"] == "application/json"
    for name, value in api_headers().items():
        assert response.headers[name] == value


def test_the_api_policy_refuses_everything():
    assert api_headers()["content-security-policy"] == API_POLICY
    assert {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}.items() <= api_headers().items()


def test_a_page_policy_allows_its_inline_blocks_by_hash_and_nothing_else():
    html = "<style>p{}</style><script>go()</script><script>more()</script>"
    policy = dict(part.split(" ", 1) for part in page_policy(html, img_src="'self' blob:").split("; "))
    assert policy["default-src"] == "'none'" and policy["img-src"] == "'self' blob:"
    assert policy["script-src"].count("'sha256-") == 2 and policy["style-src"].count("'sha256-") == 1
    assert policy["frame-ancestors"] == policy["base-uri"] == policy["form-action"] == "'none'"
    unsafe = dict(part.split(" ", 1) for part in page_policy(html, style_src="'unsafe-inline'").split("; "))
    assert unsafe["style-src"] == "'unsafe-inline'"  # a hash would cancel 'unsafe-inline'
