"""Malformed HTTP-shaped events never escape the entry: mutations of every HTTP fixture (ours and the third-party
ones under tests/events/third_party) — a value made null, a number, a list, an object or a string, or a field
removed — are answered with a well-formed HTTP response below 500 (400 ``invalid_request`` when Mangum cannot read
the event), or refused by name when the mutation made them some other source. Deterministic: a fixed seed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from handler.errors import UnsupportedEvent
from handler.sources import http
from support import EVENTS, load_event, response_body

SEED = 22
MUTATIONS_PER_FIXTURE = 120
REPLACEMENTS = (None, 7, [], {}, "x", True)


def http_fixtures() -> list[str]:
    names = sorted(str(p.relative_to(EVENTS)) for p in EVENTS.rglob("*.json"))
    return [name for name in names if http.matches(load_event(name))]


def paths(value, prefix=()) -> Iterator[tuple]:
    """Every path into the event's dicts and lists (the event itself excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def mutated(event: dict, path: tuple, replacement) -> dict:
    event = json.loads(json.dumps(event))
    *parents, last = path
    holder = event
    for key in parents:
        holder = holder[key]
    if replacement is _DELETE:
        del holder[last]
    else:
        holder[last] = replacement
    return event


_DELETE = object()


def mutations() -> Iterator[tuple[str, tuple, object, dict]]:
    rng = random.Random(SEED)
    for name in http_fixtures():
        event = load_event(name)
        candidates = [(path, r) for path in paths(event) for r in (*REPLACEMENTS, _DELETE)]
        for path, replacement in rng.sample(candidates, min(MUTATIONS_PER_FIXTURE, len(candidates))):
            yield name, path, replacement, mutated(event, path, replacement)


def test_there_are_http_fixtures_of_every_kind():
    names = http_fixtures()
    assert len(names) >= 10 and any("alb" in n for n in names) and any("v2" in n or "http-api" in n for n in names)


def test_mutated_http_events_get_an_http_answer_below_500(entry, lambda_context):
    escaped, answered, refused = [], 0, 0
    for name, path, replacement, event in mutations():
        try:
            response = entry.lambda_handler(event, lambda_context)
        except UnsupportedEvent:
            refused += 1  # no longer an HTTP event: refused by name, as any unknown source
            continue
        except Exception as exc:  # noqa: BLE001 (what this test looks for)
            escaped.append(f"{name} {path} = {replacement!r}: {type(exc).__name__}: {exc}")
            continue
        status = response.get("statusCode") if isinstance(response, dict) else None
        if not isinstance(status, int) or status >= 500:
            escaped.append(f"{name} {path} = {replacement!r}: answered {str(response)[:200]}")
            continue
        if status >= 400 and status != 404:
            body = json.loads(response_body(response))
            assert body["status"] == "error" and body["error"] and body["message"], (name, path, body)
        answered += 1
    assert not escaped, f"{len(escaped)} escaped:\n" + "\n".join(escaped[:40])
    assert answered > 10 * refused  # most mutations stay HTTP events


def test_a_null_header_value_is_a_400_naming_the_event(entry, lambda_context):
    event = load_event("apigw-v2-http.json")
    event["headers"]["user-agent"] = None
    response = entry.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 400
    body = json.loads(response_body(response))
    assert body["error"] == "invalid_request" and "malformed HTTP event" in body["message"]
