"""Static checks of docker/Dockerfile, docker/compose.yml and .dockerignore (no Docker needed).

Every command the image or compose runs is parsed by the real `researchdesk` argument parser, and
every setting compose passes is checked against `Settings`, so the deployment files cannot drift
from the code unnoticed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from researchdesk import cli
from researchdesk.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("migrate", "api", "worker")
EXPECTED_COMMANDS = {
    "migrate": ["researchdesk", "migrate"],
    "api": ["researchdesk", "serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"],
    "worker": ["researchdesk", "worker", "--concurrency", "4"],
}
IMAGE_CMD = ["researchdesk", "serve", "--host", "0.0.0.0", "--port", "8000"]


# --- helpers ------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def instruction_args(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions() if kw == keyword]


def single(keyword: str) -> str:
    values = instruction_args(keyword)
    assert len(values) == 1, f"expected exactly one {keyword}, found {values}"
    return values[0]


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"no service {name!r} in compose.yml"
    spec = services[name]
    assert isinstance(spec, dict)
    return spec


def command_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def environment(spec: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a mapping, whichever of compose's two forms it uses."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.split("=", 1) for item in env]
        return {pair[0]: (pair[1] if len(pair) == 2 else None) for pair in pairs}
    return {str(key): (None if value is None else str(value)) for key, value in env.items()}


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


def interpolate(value: str, host_env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `$$` rules."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = host_env.get(name)
        if op in (":-", "-"):
            use_default = current is None or (op == ":-" and current == "")
            return arg if use_default else str(current)
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise AssertionError(f"compose requires {name} to be set: {arg}")
            return current
        if op in (":+", "+"):
            return arg if current else ""
        return current or ""

    return _VARIABLE.sub(substitute, value)


def settings_env_names() -> set[str]:
    """Every environment variable name `Settings` reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


class _Parsed(Exception):
    """Raised instead of running the command once its arguments are parsed."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = namespace


def parse_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """What the real `researchdesk` parser makes of argv, without running the command."""
    assert argv[0] == "researchdesk", f"not a researchdesk command: {argv}"
    original = argparse.ArgumentParser.parse_args

    def parse_only(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Parsed(original(self, *args, **kwargs))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    try:
        cli.main(argv[1:])
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as exc:
        pytest.fail(f"`{shlex.join(argv)}` is rejected by the CLI parser (exit {exc.code})")
    pytest.fail("cli.main returned without parsing its arguments")


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops `path` or one of its parents (`!` exceptions honoured)."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        forms = {body, body[3:]} if body.startswith("**/") else {body}
        hit = any(
            fnmatch.fnmatchcase(candidate, form) for candidate in candidates for form in forms
        )
        if hit:
            ignored = not negate
    return ignored


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_base_image_is_python_311_slim() -> None:
    assert single("FROM") == "python:3.11-slim"


def test_dockerfile_runs_as_a_created_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [(index, rest) for index, (kw, rest) in enumerate(instructions) if kw == "USER"]
    assert users, "the image runs as root"
    index, user = users[-1]
    name, _, group = user.partition(":")
    assert name not in ("root", "0"), user
    assert group not in ("root", "0"), user
    cmd_index = next(i for i, (kw, _) in enumerate(instructions) if kw == "CMD")
    assert index < cmd_index
    creations = " ".join(rest for kw, rest in instructions[:index] if kw == "RUN")
    assert "useradd" in creations
    assert (f"--uid {name}" in creations) if name.isdigit() else (name in creations)


def test_dockerfile_installs_with_the_constraints() -> None:
    runs = " ".join(instruction_args("RUN"))
    assert "pip install --no-cache-dir -c constraints.txt ." in runs


def test_dockerfile_copies_existing_files_that_the_context_keeps() -> None:
    patterns = dockerignore_patterns()
    sources: list[str] = []
    for rest in instruction_args("COPY") + instruction_args("ADD"):
        argv = [arg for arg in shlex.split(rest) if not arg.startswith("--")]
        assert len(argv) >= 2, rest
        sources.extend(argv[:-1])
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {"pyproject.toml", "setup.py", "constraints.txt", "src", "alembic", project["readme"]}
    assert needed <= {PurePosixPath(source).as_posix().rstrip("/") for source in sources}


def test_dockerfile_cmd_is_serve_on_all_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = json.loads(single("CMD"))  # exec form, so the server gets SIGTERM itself
    assert cmd == IMAGE_CMD
    args = parse_cli(cmd, monkeypatch)
    assert (args.command, args.host, args.port, args.no_worker) == ("serve", "0.0.0.0", 8000, False)
    assert single("EXPOSE") == str(args.port)


def test_dockerfile_healthcheck_probes_healthz_with_python() -> None:
    options, _, command = single("HEALTHCHECK").partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    compile(code, "<healthcheck>", "exec")  # valid Python
    assert "http://127.0.0.1:8000/healthz" in code
    assert "curl" not in code
    assert "wget" not in code
    from researchdesk.api.health import router

    assert "/healthz" in {getattr(route, "path", None) for route in router.routes}


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = dockerignore_patterns()
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "researchdesk.db",
        "researchdesk.db-wal",
        "researchdesk.secret",
        "src/researchdesk/__pycache__/cli.cpython-311.pyc",
        "src/researchdesk.egg-info/PKG-INFO",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples",
        ".env",
    ):
        assert dockerignored(path, patterns), f"{path} would be sent to the build"


# --- compose.yml --------------------------------------------------------------------------------


def test_compose_has_the_four_services() -> None:
    assert set(compose()["services"]) == {"postgres", *APP_SERVICES}


def test_compose_postgres_is_healthchecked_with_a_named_volume() -> None:
    postgres = service("postgres")
    assert postgres["image"] == "postgres:16"
    env = environment(postgres)
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env)
    test = postgres["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    volume = postgres["volumes"][0]
    name, _, target = volume.partition(":")
    assert target == "/var/lib/postgresql/data"
    assert name in (compose().get("volumes") or {}), f"volume {name} is not a named volume"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_app_services_build_the_dockerfile_from_the_repo_root(name: str) -> None:
    spec = service(name)
    build = spec["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert spec["image"] == service("api")["image"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_commands_are_accepted_by_the_cli(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = command_argv(service(name)["command"])
    assert argv == EXPECTED_COMMANDS[name]
    args = parse_cli(argv, monkeypatch)
    assert args.command == argv[1]
    if name == "api":
        assert args.no_worker is True
        assert args.host == "0.0.0.0"
        assert f"{args.port}:{args.port}" in [str(port) for port in service("api")["ports"]]
    if name == "worker":
        assert args.concurrency == 4


@pytest.mark.parametrize("subcommand", ["serve", "worker", "migrate"])
def test_cli_subcommand_help_exits_zero(subcommand: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "researchdesk.cli", subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_console_script_used_by_the_image_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["researchdesk"] == "researchdesk.cli:main"


def test_compose_start_order() -> None:
    assert service("migrate")["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends_on = service(name)["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert service("migrate")["restart"] == "no"  # the string, not YAML's boolean


def test_compose_workers_expose_their_metrics_on_the_network_only() -> None:
    env = environment(service("worker"))
    assert env["RESEARCHDESK_METRICS_PORT"] == "9101"
    assert env["RESEARCHDESK_METRICS_HOST"] == "0.0.0.0"
    settings = Settings(metrics_port=int(env["RESEARCHDESK_METRICS_PORT"] or 0))
    assert settings.metrics_port == 9101


def test_compose_worker_scales_and_stops_gracefully() -> None:
    worker = service("worker")
    assert worker["deploy"]["replicas"] == 2
    assert worker["stop_grace_period"] == "30s"
    assert worker.get("init") is True  # signals reach the worker through a real PID 1
    assert "ports" not in worker  # replicas would fight over a host port


@pytest.mark.parametrize("name", ["migrate", "worker"])
def test_compose_disables_the_http_healthcheck_where_nothing_serves_http(name: str) -> None:
    assert service(name)["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_environment_names_are_real_settings(name: str) -> None:
    env = environment(service(name))
    known = settings_env_names()
    unknown = sorted(set(env) - known)
    assert not unknown, f"{name}: not read by Settings: {unknown}"
    assert env["HF_TOKEN"] == "${HF_TOKEN:-}"
    assert env["RESEARCHDESK_API_KEYS"] == "${RESEARCHDESK_API_KEYS:-}"
    assert env["RESEARCHDESK_ADMIN_API_KEYS"] == "${RESEARCHDESK_ADMIN_API_KEYS:-}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_app_services_share_one_master_key(name: str) -> None:
    # The shell's RESEARCHDESK_SECRET_KEY when set; else one key file on a volume they share.
    env = environment(service(name))
    assert env["RESEARCHDESK_SECRET_KEY"] == "${RESEARCHDESK_SECRET_KEY:-}"
    key_file = PurePosixPath(str(env["RESEARCHDESK_SECRET_KEY_FILE"]))
    volume, _, target = service(name)["volumes"][0].partition(":")
    assert PurePosixPath(target) == key_file.parent
    assert volume in (compose().get("volumes") or {}), f"volume {volume} is not a named volume"
    # The image creates that directory for its user, so a new volume starts writable by it.
    assert any(
        keyword == "RUN" and f"-o 10001 -g 10001 {target}" in arguments
        for keyword, arguments in dockerfile_instructions()
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_compose_environment_makes_valid_settings_for_the_postgres_service(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in settings_env_names():
        monkeypatch.delenv(variable, raising=False)
    resolved = {
        key: interpolate(value or "", {}) for key, value in environment(service(name)).items()
    }
    for key, value in resolved.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    url = urlsplit(settings.database_url)
    postgres = environment(service("postgres"))
    assert url.scheme == "postgresql+asyncpg"
    assert url.hostname == "postgres"
    assert url.port == 5432
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert settings.api_key_list() == []  # unset on the host: the API is open
    assert not settings.llm_api_key  # unset HF_TOKEN: no key, rather than a bogus one
    assert settings.secret_key is None  # unset: the shared key file


def test_interpolate_follows_compose_rules() -> None:
    host = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}|$$", host) == "x|d||d|$"
    with pytest.raises(AssertionError):
        interpolate("${UNSET:?needed}", host)
