"""Start `mixlm worker` as a child process configured only through MIXLM_* variables, the way a
deployment would (used by the pipeline benchmark and the integration tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mixlm.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Every set field of Settings as a MIXLM_* variable (lists and dicts as JSON, as pydantic-settings reads them)."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"MIXLM_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def spawn_worker(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen:
    """`mixlm -v worker` with these settings; its output goes to log_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | settings_env(settings)
    mixlm = Path(sys.executable).parent / "mixlm"
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(mixlm), "-v", "worker", *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM (the worker finishes its batch and commits), then SIGKILL if it has not exited within grace_s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
