"""The production shape (docker-compose.yml, Dockerfile) agrees with the code it runs.

No container runs here; these catch the drift that would only show on someone's server: a
misspelt key or setting, a command the CLI no longer has, a search attribute added in code but
not registered, a package not copied.

The Compose Specification's JSON schema is vendored beside this file, because CI has no
network: `compose-spec.json` is `schema/compose-spec.json` of
https://github.com/compose-spec/compose-spec at commit
00655e2222608fa6eaecdf12ac5195889ca2244a (the schema carries no version of its own). To update
it, replace the file with a newer one from that repository and set COMPOSE_SPEC_SHA256 and the
commit above to match.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError
from temporalio.worker import Worker

from journeyman.cli import build_parser
from journeyman.settings import (
    DEV_API_KEY,
    DEV_CRM_WEBHOOK_SECRET,
    DEV_FEEDBACK_SECRET,
    DEV_SECRET_KEY,
    PROJECT_ROOT,
    Settings,
)
from journeyman.temporal import search_attribute_flags
from worker import GRACEFUL_SHUTDOWN

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE_SPEC = Path(__file__).with_name("compose-spec.json")
COMPOSE_SPEC_SHA256 = "bc50c2d79102aed8df21b3a13e56c9396c7a06da6cff5ce37629f2ee7eb41735"
JOURNEYMAN_SERVICES = ("migrate", "worker", "api")
# What the operator must export before `docker compose up` (the file refuses to start without).
OPERATOR_ENV = {"JOURNEYMAN_API_KEYS": "k1,k2", "JOURNEYMAN_SECRET_KEY": "s" * 32}
DEV_PLACEHOLDERS = {DEV_API_KEY, DEV_SECRET_KEY, DEV_FEEDBACK_SECRET, DEV_CRM_WEBHOOK_SECRET}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SPEC.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


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


def settings_values(environment: dict[str, Any], operator_env: dict[str, str]) -> dict[str, str]:
    """The service's JOURNEYMAN_* variables as Settings field values, as the container sees them."""
    return {
        name.removeprefix("JOURNEYMAN_").lower(): interpolate(str(value), operator_env)
        for name, value in environment.items()
        if name.startswith("JOURNEYMAN_")
    }


def schema_errors(validator: jsonschema.Draft7Validator, document: object) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_the_vendored_schema_is_the_recorded_upstream_file() -> None:
    # An edit to make a failing file pass would show here, not as a silently laxer schema.
    assert hashlib.sha256(COMPOSE_SPEC.read_bytes()).hexdigest() == COMPOSE_SPEC_SHA256


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    assert schema_errors(validator, compose) == []


@pytest.mark.parametrize(
    ("original", "broken", "where"),
    [
        # A typo'd key: Compose would refuse the whole file.
        ("    stop_grace_period: 20s", "    stop_grace_periode: 20s", "services.worker"),
        # YAML reads an unquoted `no` as false, and `restart` wants a string.
        ('    restart: "no"', "    restart: no", "services.migrate.restart"),
        ("        condition: service_completed_successfully", "        condition: done",
         "services.temporal.depends_on"),
    ],
)  # fmt: skip
def test_a_broken_copy_of_the_compose_file_fails_the_schema(
    validator: jsonschema.Draft7Validator, original: str, broken: str, where: str
) -> None:
    text = COMPOSE.read_text()
    assert original in text
    errors = schema_errors(validator, yaml.safe_load(text.replace(original, broken, 1)))
    assert errors
    assert any(error.startswith(where) for error in errors), errors


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


@pytest.mark.parametrize("name", JOURNEYMAN_SERVICES)
def test_service_commands_are_real_journeyman_commands(services: dict[str, Any], name: str) -> None:
    program, *arguments = services[name]["command"]
    assert program == "journeyman"
    # argparse exits (SystemExit) on an unknown command or option.
    args = build_parser().parse_args(arguments)
    assert args.command == name


def test_the_api_listens_where_compose_publishes_and_probes_it(services: dict[str, Any]) -> None:
    api = services["api"]
    args = build_parser().parse_args(api["command"][1:])
    assert args.host == "0.0.0.0"
    assert any(str(port).endswith(f":{args.port}") for port in api["ports"])
    assert f"127.0.0.1:{args.port}/healthz" in " ".join(api["healthcheck"]["test"])


def test_the_dockerfile_default_command_is_a_real_command() -> None:
    match = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match
    program, *arguments = json.loads(match.group(1))
    assert program == "journeyman"
    assert build_parser().parse_args(arguments).command == "api"


def test_every_journeyman_variable_is_a_real_setting(services: dict[str, Any]) -> None:
    # Every name in either file, comments included (`JOURNEYMAN_SMTP_*` stands for a family).
    text = COMPOSE.read_text() + DOCKERFILE.read_text()
    mentioned = set(re.findall(r"\bJOURNEYMAN_\w+\b(?!\*)", text))
    for name in JOURNEYMAN_SERVICES:
        mentioned |= set(services[name]["environment"])
    unknown = {
        name for name in mentioned
        if name.removeprefix("JOURNEYMAN_").lower() not in Settings.model_fields
    }  # fmt: skip
    assert mentioned
    assert not unknown


@pytest.mark.parametrize("name", JOURNEYMAN_SERVICES)
def test_compose_settings_are_valid_in_production(services: dict[str, Any], name: str) -> None:
    values = settings_values(services[name]["environment"], OPERATOR_ENV)
    settings = Settings.model_validate(values)
    assert settings.env == "production"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.tracing is False
    # No development placeholder reaches a production container by default.
    assert not DEV_PLACEHOLDERS & set(values.values())


def test_production_secrets_must_come_from_the_operator(services: dict[str, Any]) -> None:
    environment = services["api"]["environment"]
    for variable in ("JOURNEYMAN_SECRET_KEY", "JOURNEYMAN_API_KEYS"):
        with pytest.raises(KeyError, match=variable):
            interpolate(str(environment[variable]), {})
    # And the ones the operator gives are checked: the dev values are refused.
    with pytest.raises(ValidationError, match="JOURNEYMAN_SECRET_KEY"):
        Settings.model_validate(
            settings_values(environment, {**OPERATOR_ENV, "JOURNEYMAN_SECRET_KEY": DEV_SECRET_KEY})
        )
    with pytest.raises(ValidationError, match="JOURNEYMAN_API_KEYS"):
        Settings.model_validate(
            settings_values(environment, {**OPERATOR_ENV, "JOURNEYMAN_API_KEYS": DEV_API_KEY})
        )


def test_the_webhook_crm_cannot_start_on_compose_defaults(services: dict[str, Any]) -> None:
    # Compose leaves the CRM webhook secret empty rather than at the dev placeholder, and
    # production refuses to start the generic connector without a real one.
    chosen = {**OPERATOR_ENV, "JOURNEYMAN_CRM": "webhook",
              "JOURNEYMAN_CRM_WEBHOOK_URL": "https://crm.example/hook"}  # fmt: skip
    values = settings_values(services["worker"]["environment"], chosen)
    with pytest.raises(ValidationError, match="JOURNEYMAN_CRM_WEBHOOK_SECRET"):
        Settings.model_validate(values)
    secret = {**chosen, "JOURNEYMAN_CRM_WEBHOOK_SECRET": "c" * 32}
    values = settings_values(services["worker"]["environment"], secret)
    assert Settings.model_validate(values).crm == "webhook"


def test_tracing_can_be_switched_on_from_the_operator_environment(
    services: dict[str, Any],
) -> None:
    chosen = {**OPERATOR_ENV, "JOURNEYMAN_TRACING": "true",
              "JOURNEYMAN_OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}  # fmt: skip
    for name in ("api", "worker"):
        settings = Settings.model_validate(settings_values(services[name]["environment"], chosen))
        assert settings.tracing is True
        assert settings.otel_exporter_otlp_endpoint == "http://otel-collector:4318"


def test_only_the_worker_serves_worker_metrics(services: dict[str, Any]) -> None:
    worker = Settings.model_validate(
        settings_values(services["worker"]["environment"], OPERATOR_ENV)
    )
    assert worker.worker_metrics_address == "0.0.0.0:9464"
    port = worker.worker_metrics_address.rpartition(":")[2]
    assert port in [str(exposed) for exposed in services["worker"]["expose"]]
    # Not published on the host: `--scale worker=N` would fight over one host port.
    assert "ports" not in services["worker"]
    for name in ("api", "migrate"):
        assert "JOURNEYMAN_WORKER_METRICS_ADDRESS" not in services[name]["environment"], name
    # The worker keeps every shared setting besides its own (`<<` merges shallowly).
    assert set(services["api"]["environment"]) < set(services["worker"]["environment"])


def test_compose_waits_longer_than_the_worker_graceful_shutdown(services: dict[str, Any]) -> None:
    grace = re.fullmatch(r"(\d+)s", services["worker"]["stop_grace_period"])
    assert grace
    assert int(grace.group(1)) > GRACEFUL_SHUTDOWN.total_seconds()


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


DEPLOYMENT_GUIDE = PROJECT_ROOT / "docs" / "DEPLOYMENT.md"


def guide_commands() -> list[list[str]]:
    """Every `journeyman ...` in the guide's code blocks and inline code, as argv after it."""
    guide = DEPLOYMENT_GUIDE.read_text()
    blocks = re.findall(r"^```\w*\n(.*?)^```", guide, re.MULTILINE | re.DOTALL)
    lines = " \n".join(blocks).replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(journeyman [^`]*)`", guide)
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if "journeyman" in words:
            commands.append(words[words.index("journeyman") + 1 :])
    return commands


def subcommands() -> set[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


def test_every_command_in_the_deployment_guide_is_real() -> None:
    commands = guide_commands()
    assert len(commands) >= 8
    for argv in commands:
        if len(argv) == 1:
            # A command named on its own, as prose does (`journeyman contact`).
            assert argv[0] in subcommands(), argv
            continue
        args = build_parser().parse_args(argv)
        assert args.command == argv[0], argv


def test_the_deployment_guide_names_only_real_settings_and_worker_options() -> None:
    guide = DEPLOYMENT_GUIDE.read_text()
    settings = set(re.findall(r"\bJOURNEYMAN_(\w+)\b(?!\*)", guide))
    assert settings
    assert {name.lower() for name in settings} <= set(Settings.model_fields)
    options = set(re.findall(r"`(max_\w+|graceful_shutdown_timeout)`", guide))
    assert {"max_task_queue_activities_per_second", "max_concurrent_activities",
            "max_cached_workflows", "graceful_shutdown_timeout"} <= options  # fmt: skip
    assert options <= set(inspect.signature(Worker.__init__).parameters)


def test_an_exited_worker_is_started_again(services: dict[str, Any]) -> None:
    # The poller watchdog (journeyman.worker_watchdog) exits a worker that stopped polling;
    # only a restart policy turns that exit into a recovery.
    assert services["worker"].get("restart") in {"always", "unless-stopped", "on-failure"}
