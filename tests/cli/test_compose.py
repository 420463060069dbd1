"""The production shape (docker-compose.yml, Dockerfile) agrees with the code it runs.

No container runs here; these catch the drift that would only show on someone's server: a
misspelt setting, a search attribute added in code but not registered, a package not copied.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml

from journeyman.settings import PROJECT_ROOT, Settings
from journeyman.temporal import search_attribute_flags

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
JOURNEYMAN_SERVICES = ("migrate", "worker", "api")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = loaded["services"]
    return found


def interpolate(value: str, environment: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, enough for this file."""

    def one(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if environment.get(name):
            return environment[name]
        if operator == ":-":
            return rest
        raise KeyError(f"{name} is required: {rest}")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def test_compose_has_the_production_services(services: dict[str, Any]) -> None:
    assert {"postgres", "temporal", "temporal-schema", "temporal-setup", "temporal-ui",
            "mailpit", *JOURNEYMAN_SERVICES} <= set(services)  # fmt: skip
    for name in ("temporal", "temporal-schema", "temporal-setup", "temporal-ui"):
        assert services[name]["image"].startswith("temporalio/"), name


def test_api_and_worker_are_one_image_and_wait_for_migrations(services: dict[str, Any]) -> None:
    for name in JOURNEYMAN_SERVICES:
        assert services[name]["build"] == ".", name
        assert services[name]["command"][0] == "journeyman", name
    assert services["migrate"]["command"] == ["journeyman", "migrate"]
    for name in ("worker", "api"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["temporal-setup"]["condition"] == "service_completed_successfully"


def test_compose_settings_are_real_and_valid_in_production(services: dict[str, Any]) -> None:
    environment = services["api"]["environment"]
    unknown = {
        name for name in environment
        if name.removeprefix("JOURNEYMAN_").lower() not in Settings.model_fields
    }  # fmt: skip
    assert not unknown
    operator_env = {"JOURNEYMAN_API_KEYS": "k1,k2", "JOURNEYMAN_SECRET_KEY": "s" * 32}
    values = {
        name.removeprefix("JOURNEYMAN_").lower(): interpolate(str(value), operator_env)
        for name, value in environment.items()
    }
    settings = Settings.model_validate(values)
    assert settings.env == "production"
    assert settings.database_url.startswith("postgresql+psycopg://")
    with pytest.raises(KeyError, match="JOURNEYMAN_SECRET_KEY"):
        interpolate(str(environment["JOURNEYMAN_SECRET_KEY"]), {})


def test_temporal_setup_registers_every_search_attribute(services: dict[str, Any]) -> None:
    script = " ".join(services["temporal-setup"]["command"])
    for flag in search_attribute_flags():
        assert flag in script


def test_dockerfile_copies_every_package_the_wheel_installs() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    modules = project["tool"]["setuptools"]["py-modules"]
    dockerfile = DOCKERFILE.read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
    for module in modules:
        assert f"{module}.py" in dockerfile, module
    assert "COPY templates ./templates" in dockerfile
    assert "JOURNEYMAN_TEMPLATES_DIR=/app/templates" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
