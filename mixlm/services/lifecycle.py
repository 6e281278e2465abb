"""up / down / status for one server: reuse what runs, refuse taken ports, launch detached, wait until it
answers, and stop only the pid we started."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

from mixlm.errors import ServiceError
from mixlm.services import process, servers
from mixlm.services.probes import PROBES
from mixlm.services.servers import Server
from mixlm.settings import Settings

log = logging.getLogger(__name__)
TAIL_LINES = 40


@dataclass
class Launch:
    server: Server
    pid: int
    reused: bool
    t0: float  # monotonic time of the launch (or of the reuse check)
    fetched_s: float = 0.0


def running_pid(server: Server) -> int | None:
    pid = process.read_pid(server.pid_file)
    return pid if process.is_ours(pid, server.marker) else None


def prepare(server: Server, settings: Settings) -> float:
    """Refuse taken ports, fetch jars, render configs, format Kafka storage. Returns the fetch seconds.
    Call only when our server is not running (see running_pid)."""
    java = servers.java_bin()
    taken = [p for p in server.ports if process.port_taken(server.host, p)]
    if taken:
        raise ServiceError(f"{server.name}: port {', '.join(map(str, taken))} on {server.host} is taken by a process "
                           f"`mixlm services` did not start; stop it or change the port (MIXLM_* settings)")
    t_fetch = time.monotonic()
    servers.fetch_jars(server)
    fetched_s = time.monotonic() - t_fetch
    servers.write_configs(server, settings)
    if server.name == "kafka" and servers.kafka_format_storage(server, java):
        log.info("formatted Kafka storage in %s", server.data)
    return fetched_s


def launch(server: Server, settings: Settings, fetched_s: float = 0.0) -> Launch:
    """Start the prepared server in the background, detached from this process."""
    t0 = time.monotonic()
    pid = process.start_detached(servers.command(server, settings, servers.java_bin()), server.log_file, cwd=server.root)
    server.pid_file.write_text(f"{pid}\n")
    server.state_file.unlink(missing_ok=True)
    return Launch(server, pid, reused=False, t0=t0, fetched_s=fetched_s)


def wait_ready(launched: Launch, timeout_s: float) -> tuple[str, float]:
    """Poll the server's probe until it answers; (answer, seconds since launch). On exit or timeout:
    ServiceError with the log tail (and a server that never came up is stopped)."""
    server, probe = launched.server, PROBES[launched.server.name]
    deadline = launched.t0 + timeout_s
    last_error = ""
    while True:
        try:
            answer = probe(server.host, server.port)
            break
        except Exception as exc:  # any client error just means "not yet"
            last_error = f"{type(exc).__name__}: {exc}"
        process.reap(launched.pid)
        if not process.is_ours(launched.pid, server.marker):
            server.pid_file.unlink(missing_ok=True)
            raise ServiceError(f"{server.name} exited during start-up; last lines of {server.log_file}:\n"
                               f"{process.tail(server.log_file, TAIL_LINES)}")
        if time.monotonic() > deadline:
            process.stop(launched.pid, server.marker)
            server.pid_file.unlink(missing_ok=True)
            raise ServiceError(f"{server.name} did not answer on {server.host}:{server.port} within {timeout_s:.0f} s "
                               f"({last_error}); last lines of {server.log_file}:\n{process.tail(server.log_file, TAIL_LINES)}")
        time.sleep(0.5)
    ready_s = time.monotonic() - launched.t0
    if not launched.reused:
        state = {"pid": launched.pid, "ready_s": round(ready_s, 2), "fetch_s": round(launched.fetched_s, 2),
                 "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "answer": answer}
        server.state_file.write_text(json.dumps(state))
    return answer, ready_s


def read_state(server: Server) -> dict:
    try:
        return json.loads(server.state_file.read_text())
    except (OSError, ValueError):
        return {}


def bring_down(server: Server, timeout_s: float = 30.0) -> str:
    """Stop the server only if the pid file names a live process of ours; clean up the pid file."""
    pid = process.read_pid(server.pid_file)
    outcome = process.stop(pid, server.marker, timeout_s) if pid else "not running"
    server.pid_file.unlink(missing_ok=True)
    return outcome
