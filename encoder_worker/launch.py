"""Start `mixlm worker` (or another `mixlm` command: `bench http --spawn` starts `serve`) as a child process
configured only through MIXLM_* variables, the way a deployment would (benchmarks and integration tests)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from mixlm.settings import Settings


def free_port() -> int:
    """A loopback port nothing listens on right now (for a child server, or a port to find closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """Every set field of Settings as a MIXLM_* variable (lists and dicts as JSON, as pydantic-settings reads them)."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"MIXLM_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def spawn_mixlm(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen:
    """`mixlm ARGS` configured only by these settings (as MIXLM_* variables); its output goes to log_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | settings_env(settings)
    mixlm = Path(sys.executable).parent / "mixlm"
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(mixlm), *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def spawn_worker(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen:
    """`mixlm -v worker` with these settings; its output goes to log_path."""
    return spawn_mixlm(settings, log_path, "-v", "worker", *args)


def stop_worker(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM (the worker finishes its batch and commits), then SIGKILL if it has not exited within grace_s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
