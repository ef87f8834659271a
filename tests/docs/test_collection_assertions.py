"""The Postman collection's own promises: no assertion that passes on a body not in our shape,
and a description that says when the quota really resets."""

from __future__ import annotations

import json
import re

from testkit import ROOT

COLLECTION = json.loads((ROOT / "collection.json").read_text(encoding="utf-8"))


def scripts() -> list[tuple[str, str]]:
    found = []

    def walk(items):
        for item in items:
            if "item" in item:
                walk(item["item"])
                continue
            for event in item.get("event", []):
                if event["listen"] == "test":
                    found.append((item["name"], "\n".join(event["script"]["exec"])))

    walk(COLLECTION["item"])
    return found


def assertions(script: str) -> list[str]:
    return ["pm.test(" + part for part in script.split("pm.test(")[1:]]


def test_every_assertion_over_rows_first_checks_there_are_rows():
    # `(json().data || []).forEach(...)` or `rows.filter(...)` over `rows = ... : []` passes on a
    # body that is not in our shape at all: each such assertion must check the array first.
    weak = []
    for name, script in scripts():
        for block in assertions(script):
            iterates = re.search(r"\b(rows|data)\b\s*\.\s*(forEach|filter|some|every|map)\(", block)
            iterates = iterates or "|| []).forEach" in block
            checked = "to.be.an('array')" in block or "rows.length" in block
            if iterates and not checked:
                weak.append(f"{name}: {block.splitlines()[0][:90]}")
    assert weak == []


def test_the_description_says_the_quota_resets_at_midnight_utc():
    description = COLLECTION["info"]["description"]
    assert "reset at 00:00 UTC" in description
    assert "the reset after 24 hours)" not in description
