"""There is no Docker engine on the build machines, so this checks what can be checked without
one: the compose file's structure, the Dockerfile's stages, user and health check, that every
path they copy exists, and that the image's command is the same scripts/serve the tests run."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_compose_runs_mysql_80_with_a_health_check_and_the_sample_database():
    db = compose()["services"]["db"]
    assert db["image"] == "mysql:8.0"
    assert "mysqladmin" in db["healthcheck"]["test"]
    assert db["environment"]["MYSQL_DATABASE"] == "wikimedia_prod"
    mount = db["volumes"][0].split(":")
    assert (ROOT / mount[0]).is_file() and mount[1].startswith("/docker-entrypoint-initdb.d/")


def test_api_waits_for_a_healthy_database_and_for_migrations():
    services = compose()["services"]
    assert services["migrate"]["command"][-1] == "migrate"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    depends = services["api"]["depends_on"]
    assert depends["db"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    env = services["api"]["environment"]
    assert env["DB_HOST"] == "db" and env["PORT"] == "8080"
    assert services["api"]["ports"] == ["8080:8080"]


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    text = dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(stages) == 2 and all(s.startswith("python:3.11") for s in stages)
    assert re.search(r"^USER app$", text, flags=re.M)
    assert "HEALTHCHECK" in text and "/health" in text
    assert re.search(r'^CMD \["scripts/serve"\]$', text, flags=re.M)


def test_everything_the_image_copies_exists():
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", dockerfile(), flags=re.M):
        if source.startswith("/"):
            continue  # from the build stage
        assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored, "secrets and history stay out of the image"
