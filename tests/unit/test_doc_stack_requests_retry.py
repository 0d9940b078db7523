"""The documents' requests to the stack in LocalStack retry: right after `make stack` the function URL's first request
starts the function's container, and may be refused or answered 5xx before the function is ready. Each curl of a
`stack` block retries (``--retry``) and, when it gives up, prints the error's body (``--fail-with-body``, not
``--fail``, which hides it)."""

from __future__ import annotations

import pytest

from support import doc_commands

CURLS = [
    (block.id, words)
    for block in doc_commands.blocks("stack")
    for words in doc_commands.commands(block.text)
    if words[:1] == ["curl"]
]


def test_the_stack_blocks_make_requests():
    assert CURLS


@pytest.mark.parametrize(("where", "words"), CURLS, ids=[f"{where}:{i}" for i, (where, _) in enumerate(CURLS)])
def test_a_request_to_the_stack_retries_and_shows_the_error(where, words):
    assert "--retry" in words, f"{where}: {' '.join(words)} gives up on a function not ready yet"
    assert "--fail-with-body" in words and "--fail" not in words, f"{where}: {' '.join(words)} hides an error's body"
