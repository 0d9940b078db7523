"""The OpenAPI schema of ``POST /depth``'s JSON body says what the model enforces: exactly one of ``image`` / ``s3``
(``oneOf``), ``s3`` as an object or an ``s3://`` URI. Checked with a JSON Schema validator over the schema as the
app publishes it (``add_request_schema``, refs under ``#/components/schemas``), against the model's own verdict."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from handler.schemas import DepthRequest, add_request_schema

BODIES = {
    "image": ({"image": "aGk="}, True),
    "s3 uri": ({"s3": "s3://midas-in/uploads/a.jpg"}, True),
    "s3 object": ({"s3": {"bucket": "midas-in", "key": "uploads/a.jpg"}}, True),
    "image, s3 null": ({"image": "aGk=", "s3": None}, True),
    "s3, image null": ({"image": None, "s3": "s3://midas-in/uploads/a.jpg"}, True),
    "with options": ({"image": "aGk=", "output": "inline", "point_cloud": "ply", "geometry": {"mesh": True}}, True),
    "both": ({"image": "aGk=", "s3": "s3://midas-in/uploads/a.jpg"}, False),
    "both, s3 object": ({"image": "aGk=", "s3": {"bucket": "midas-in", "key": "uploads/a.jpg"}}, False),
    "neither": ({}, False),
    "neither, options only": ({"output": "inline"}, False),
    "both null": ({"image": None, "s3": None}, False),
    "s3 not a uri": ({"s3": "https://example.com/a.jpg"}, False),
}


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    document: dict = {}
    add_request_schema(document)
    return Draft202012Validator({"$ref": "#/components/schemas/DepthRequest", **document})


def model_accepts(body: dict) -> bool:
    try:
        DepthRequest.model_validate(body)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", list(BODIES))
def test_the_schema_and_the_model_agree_on_exactly_one_of_image_and_s3(validator, name):
    body, valid = BODIES[name]
    assert model_accepts(body) is valid
    assert validator.is_valid(body) is valid, list(validator.iter_errors(body))


def test_the_schema_says_one_of_and_its_examples_are_valid(validator):
    document: dict = {}
    add_request_schema(document)
    schema = document["components"]["schemas"]["DepthRequest"]
    assert [branch["required"] for branch in schema["oneOf"]] == [["image"], ["s3"]]
    assert schema["examples"] and all(validator.is_valid(example) for example in schema["examples"])
