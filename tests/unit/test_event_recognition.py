"""Which source takes each event of the committed corpus, without running it: exactly one source recognises every
event the function handles, and none recognises the others, which the refusal names by their source."""

from __future__ import annotations

import pytest

from handler import events
from handler.sources import eventbridge_s3, http, s3_batch, s3_notification, sqs
from support.event_corpus import EVENTBRIDGE, EXPECTED, THIRD_PARTY, BatchTasks, Http, Refused, S3Records, SqsBatch
from support.event_corpus import fixture as load_fixture

# Every source the entry walks (handler.entry.SOURCES, which loads the model on import); no two take the same event.
SOURCES = (http, s3_notification, sqs, eventbridge_s3, s3_batch)


def expected_source(outcome) -> object | None:
    if isinstance(outcome, Http):
        return http
    if outcome is EVENTBRIDGE:
        return eventbridge_s3
    if isinstance(outcome, S3Records):
        return s3_notification
    if isinstance(outcome, SqsBatch):
        return sqs
    if isinstance(outcome, BatchTasks):
        return s3_batch
    assert isinstance(outcome, Refused), outcome
    return None


def test_every_committed_fixture_has_an_expected_outcome():
    committed = {str(p.relative_to(THIRD_PARTY)) for p in THIRD_PARTY.rglob("*.json")}
    assert committed == set(EXPECTED)


def test_the_refusal_lists_what_the_function_handles():
    sns = {"Records": [{"EventSource": "aws:sns"}]}
    message = str(events.refusal(sns, handled=[http, s3_notification, sqs]))
    assert message == (
        "event source sns (SNS notification) is not wired to this function; it handles: HTTP request (API Gateway "
        "REST or HTTP API, Function URL, ALB); S3 event notification; SQS messages carrying S3 notifications"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_is_recognised_by_its_source_alone(name):
    event, outcome = load_fixture(name), EXPECTED[name]
    matching = [source for source in SOURCES if source.matches(event)]
    source = expected_source(outcome)
    assert matching == ([source] if source else []), [s.__name__ for s in matching]
    if source is None:
        assert events.unsupported_source(event) == outcome.source
        refusal = events.refusal(event, handled=SOURCES)
        assert refusal.source == outcome.source
        assert str(refusal).endswith("; ".join(s.LABEL for s in SOURCES))
