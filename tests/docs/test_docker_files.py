"""There is no Docker engine on the build machines, so this checks what can be checked without
one: the compose file's structure, the Dockerfile's stages, user and health check, that every
path they copy exists, that the image's command is the same scripts/serve the tests run, and
that nginx in front runs the same scripts/proxy the tests in tests/proxy run."""

from __future__ import annotations

import os
import re
import subprocess
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
    assert "mysqladmin ping" in " ".join(db["healthcheck"]["test"])
    assert db["environment"]["MYSQL_DATABASE"] == "wikimedia_prod"
    mount = db["volumes"][0].split(":")
    assert (ROOT / mount[0]).is_file() and mount[1].startswith("/docker-entrypoint-initdb.d/")


API_REPLICAS = ("api-1", "api-2")


def test_each_api_replica_waits_for_a_healthy_database_and_for_migrations():
    services = compose()["services"]
    assert services["migrate"]["command"][-1] == "migrate"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in API_REPLICAS:
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["DB_HOST"] == "db" and env["PORT"] == "8080"


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


# --- the production shape: nginx (scripts/proxy) in front of two replicas, only nginx published


def test_two_api_replicas_on_one_database_trust_exactly_one_proxy_and_are_not_published():
    services = compose()["services"]
    api_services = [name for name, s in services.items() if s.get("build") == "."]
    assert sorted(set(api_services) - {"migrate"}) == list(API_REPLICAS)
    first, second = (services[name] for name in API_REPLICAS)
    assert first == second  # the same image, settings and database
    assert first["environment"]["TRUSTED_PROXIES"] == "1"
    assert "ports" not in first
    assert first["expose"] == [first["environment"]["PORT"]]


def test_only_nginx_is_published_and_it_runs_the_repository_proxy_in_front_of_both_replicas():
    services = compose()["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"proxy"}
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:1.")
    assert proxy["ports"] == [f"8080:{proxy['environment']['PROXY_PORT']}"]
    mounts = dict(volume.rsplit(":", 1)[0].split(":") for volume in proxy["volumes"])
    assert mounts == {
        "./scripts/proxy": "/opt/wme/scripts/proxy",
        "./scripts/nginx": "/opt/wme/scripts/nginx",
    }
    assert all(volume.endswith(":ro") for volume in proxy["volumes"])
    assert proxy["command"] == ["/opt/wme/scripts/proxy"]
    port = services["api-1"]["environment"]["PORT"]
    assert proxy["environment"]["UPSTREAMS"] == ",".join(f"{n}:{port}" for n in API_REPLICAS)
    for name in API_REPLICAS:
        assert proxy["depends_on"][name]["condition"] == "service_healthy"


def test_nginx_refuses_and_times_out_exactly_as_the_replicas_do():
    services = compose()["services"]
    proxy_env = services["proxy"]["environment"]
    for setting in ("MAX_BODY_BYTES", "GUNICORN_TIMEOUT"):
        assert proxy_env[setting] == services["api-1"]["environment"][setting], setting


def test_the_proxy_configuration_renders_from_the_compose_settings():
    env = {k: str(v) for k, v in compose()["services"]["proxy"]["environment"].items()}
    result = subprocess.run(
        [str(ROOT / "scripts" / "proxy"), "--print-config"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert re.findall(r"server (\S+) max_fails", result.stdout) == ["api-1:8080", "api-2:8080"]
    assert re.search(r"^\s*client_max_body_size 67108864;", result.stdout, flags=re.M)
    assert re.search(r"^\s*listen 0\.0\.0\.0:8080;", result.stdout, flags=re.M)


# ---------------------------------------------------------------------------------------------
# The database stays on the compose network, and no password is written in the file.

REQUIRED = re.compile(r"^\$\{MYSQL_ROOT_PASSWORD:\?[^}]*\S[^}]*\}$")


def test_the_database_is_published_on_no_host_port():
    services = compose()["services"]
    assert "ports" not in services["db"], "reachable only on the compose network"
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert not str(mapping).endswith(":3306"), (name, mapping)


def test_the_root_password_is_required_from_the_environment_with_no_default():
    services = compose()["services"]
    assert REQUIRED.match(services["db"]["environment"]["MYSQL_ROOT_PASSWORD"])
    for name in ("migrate", *API_REPLICAS):
        assert REQUIRED.match(services[name]["environment"]["DB_PASS"]), name
    # No value of any service's environment is a literal password.
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if "PASS" in variable:
                assert REQUIRED.match(str(value)), (name, variable)
    # The health check keeps the password off the process list.
    test = services["db"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "MYSQL_PWD=" in test[1] and " -p" not in test[1]


def test_an_override_example_publishes_the_database_on_loopback_only():
    example = yaml.safe_load((ROOT / "docs" / "docker-compose.override.example.yml").read_text())
    assert example["services"]["db"]["ports"] == ["127.0.0.1:3307:3306"]
    assert "docker-compose.override.yml" in (ROOT / ".gitignore").read_text().split()
    assert "docs/docker-compose.override.example.yml" in (ROOT / "docker-compose.yml").read_text()


def test_compose_gives_the_sample_database_its_public_secret_and_the_image_bakes_in_none():
    from service.keys import SAMPLE_KEY_HASH_SECRET

    services = compose()["services"]
    for name in ("migrate", *API_REPLICAS):
        value = services[name]["environment"]["KEY_HASH_SECRET"]
        # Overridable from the environment; otherwise the sample data's public secret.
        assert value == "${KEY_HASH_SECRET:-" + SAMPLE_KEY_HASH_SECRET + "}", name
    assert "KEY_HASH_SECRET" not in (ROOT / "Dockerfile").read_text()
