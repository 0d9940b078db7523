"""The point-cloud formats are named in one place, ``handler.point_formats.FORMATS`` (the writers'
``pointcloud.FORMATS`` is the same), and every entry offers exactly them: the HTTP API's schema (the enum its OpenAPI
document lists, the 422 for any other value), the CLI's flags, the S3 outputs' renderings, the API's S3 fields and
the setting (``WRITE_POINT_CLOUD``) follow from it; the template's ``WritePointCloud``, which cannot import Python,
is held to it here."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from handler import __main__ as cli
from handler import pointcloud, s3_outputs
from handler.config import Settings
from handler.routes import results
from handler.schemas import DepthRequest, DepthResponse, PointCloudInfo
from support.template import read_template

FORMATS = list(pointcloud.FORMATS)


def enum_of(field_schema: dict) -> list[str]:
    """The values a field's JSON schema allows: its enum, or the enum of one of its ``anyOf`` branches (optional)."""
    return next(branch["enum"] for branch in field_schema.get("anyOf", [field_schema]) if "enum" in branch)


def refusal(body: dict) -> str:
    """The message of the one error ``body`` gets from DepthRequest."""
    with pytest.raises(ValidationError) as refused:
        DepthRequest.model_validate(body)
    (error,) = refused.value.errors()
    return error["msg"]


def test_the_api_schema_lists_exactly_the_formats():
    assert enum_of(DepthRequest.model_json_schema()["properties"]["point_cloud"]) == FORMATS
    assert enum_of(PointCloudInfo.model_json_schema()["properties"]["format"]) == FORMATS


def test_the_api_takes_each_format_and_refuses_another_naming_them():
    for fmt in FORMATS:
        assert DepthRequest.model_validate({"image": "aGk=", "point_cloud": fmt}).point_cloud == fmt
    message = refusal({"image": "aGk=", "point_cloud": "obj"})
    assert all(f"'{fmt}'" in message for fmt in FORMATS), message
    message = refusal({"image": "aGk=", "geometry": {"near": 2}})
    assert "'geometry' needs 'point_cloud'" in message
    assert all(f'"{fmt}"' in message for fmt in FORMATS), message


def test_the_api_answers_each_format_in_its_s3_field():
    for fmt in FORMATS:
        assert results._S3_FIELDS[fmt] == "point_cloud_s3"
    assert set(results._S3_FIELDS.values()) <= set(DepthResponse.model_fields)


def test_the_cli_has_a_flag_for_each_format_and_no_other():
    parser = cli._parser()
    predict = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["predict"]
    group = next(g for g in predict._action_groups if g.title.startswith("point clouds"))
    writes = {
        action.option_strings[0]: action.help for action in group._group_actions if "write <name>." in action.help
    }
    assert writes == {
        f"--{fmt}": f"also write <name>{suffix} ({media_type})"
        for fmt, (suffix, media_type) in pointcloud.FORMATS.items()
    }


def test_the_s3_outputs_write_each_format_with_its_suffix_and_media_type():
    assert {fmt: s3_outputs.RENDERINGS[fmt] for fmt in FORMATS} == pointcloud.FORMATS


def test_the_template_and_the_setting_offer_none_and_exactly_the_formats():
    parameter = read_template()["Parameters"]["WritePointCloud"]
    assert parameter["AllowedValues"] == ["none", *FORMATS]
    assert list(Settings.model_fields["write_point_cloud"].annotation.__args__) == ["none", *FORMATS]
