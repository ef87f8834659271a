"""Scripts that need a Debian package never install it unasked: they say what is missing and the
command that installs it (before running anything), or install it with visible output when
`--install` asks. Run in a copy of the project with a PATH that holds only what they need, so
the packages are missing whatever this machine has."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from testkit import ROOT


@pytest.fixture
def sandbox(tmp_path) -> tuple[Path, Path]:
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "scripts", project / "scripts", ignore=shutil.ignore_patterns("__pycache__")
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "env", "cat", "sed"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return project, bin_dir


def run(project: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(project / "scripts" / args[0]), *args[1:]],
        cwd=project,
        env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/root")},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("script", "args", "program"),
    [("bench", ["--quick"], "wrk"), ("screenshots", ["--existing"], "chromium")],
)
def test_a_missing_package_is_named_with_its_install_command(sandbox, script, args, program):
    project, bin_dir = sandbox
    done = run(project, bin_dir, script, *args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"scripts/{script} needs {program} (Debian's {program}), which is missing. "
        "Install it with:\n"
        f"  apt-get install {program}    (or run scripts/{script} --install to let it do so)\n"
    )
    assert not (project / ".venv").exists(), "nothing ran before the check"


def test_install_asks_apt_get_with_its_output_visible(sandbox):
    project, bin_dir = sandbox
    fake = bin_dir / "apt-get"
    # A stand-in for apt-get that shows what it was asked, then fails (so nothing else runs).
    fake.write_text(
        '#!/usr/bin/env bash\necho "apt-get was asked: $*"\n[ "$1" = update ] && exit 0\nexit 100\n'
    )
    fake.chmod(0o755)
    done = run(project, bin_dir, "bench", "--install", "--quick")
    assert done.returncode == 100
    assert done.stderr.startswith("installing Debian's wrk (apt-get install -y wrk)\n")
    assert done.stdout == "apt-get was asked: update\napt-get was asked: install -y wrk\n"


def test_evidence_names_missing_faketime_instead_of_installing_it(monkeypatch):
    spec = importlib.util.spec_from_file_location("evidence", ROOT / "scripts" / "evidence.py")
    evidence = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evidence)
    monkeypatch.setattr(evidence, "LIBFAKETIME_GLOB", "/nonexistent/*/libfaketime.so.1")
    calls = []
    monkeypatch.setattr(evidence.subprocess, "run", lambda *a, **k: calls.append(a))
    with pytest.raises(SystemExit) as caught:
        evidence.need_libfaketime(install=False)
    assert str(caught.value) == (
        "scripts/evidence.py needs libfaketime (Debian's faketime), which is missing. Install "
        "it with:\n  apt-get install faketime    (or run scripts/evidence.py --install to let "
        "it do so)"
    )
    assert calls == []
