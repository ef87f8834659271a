"""The top level is the design card's list plus the conventional root files, nothing else."""

from __future__ import annotations

import subprocess

from testkit import ROOT

CARD = {
    "service",
    "sql",
    "scripts",
    "tests",
    "docs",
    "monitoring",
    "collection.json",
    "docker-compose.yml",
    "Dockerfile",
    "requirements.txt",
    "setup.cfg",
    "README.md",
}
CONVENTIONAL = {"CHANGELOG.md", "ruff.toml", "requirements-dev.txt", "requirements-bench.txt"}


def test_the_top_level_is_the_cards_list_plus_conventional_root_files():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    top = {path.split("/", 1)[0] for path in tracked}
    extra = {name for name in top - CARD - CONVENTIONAL if not name.startswith(".")}
    assert not extra, f"not in the card's layout: {sorted(extra)}"
    assert top >= CARD
