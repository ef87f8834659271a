"""The quota-charging rule is stated in the same words wherever a client reads about the quota."""

from __future__ import annotations

import re

import pytest

from service.metering import RULE
from testkit import ROOT

DOCUMENTS = ["README.md", "docs/api.md", "docs/email.md"]


def flat(text: str) -> str:
    # Markdown wraps lines and list items indent them: compare the words, not the line breaks.
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_document_states_the_rule_in_the_same_words(document):
    assert RULE in flat((ROOT / document).read_text(encoding="utf-8")), document


def test_no_document_keeps_the_old_narrower_wording():
    for document in DOCUMENTS:
        text = flat((ROOT / document).read_text(encoding="utf-8"))
        assert "Calls we refuse are not counted" not in text
        assert "Calls refused with 429 (or 401/403) do not count" not in text
        assert "An admitted request is counted even if it then fails" not in text
