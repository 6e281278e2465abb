"""Background server processes: port checks, detached start, pid files that only match our own
process, graceful stop, log tails. Nothing here knows about Kafka or Cassandra."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path


def port_taken(host: str, port: int) -> bool:
    """True when something already holds host:port (we try to bind it, as the server will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: a port left in TIME_WAIT by a server we just stopped is free for the next start.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_ours(pid: int | None, marker: str) -> bool:
    """The pid is alive and its command line contains marker (our config path), so a recycled pid
    belonging to some other program is never taken for our server, nor signalled by `down`."""
    if not pid or _proc_state(pid) in ("Z", "X"):
        return False
    for _ in range(40):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if raw:
            break
        time.sleep(0.05)  # a process in the middle of exec shows an empty cmdline for a moment
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
    return marker in cmdline and _proc_state(pid) not in ("Z", "X")


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat.rsplit(")", 1)[1].split()[0]


def start_detached(cmd: list[str], log_file: Path, cwd: Path) -> int:
    """Start cmd in its own session (it outlives the CLI and ignores its Ctrl-C), stdout+stderr to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    if log_file.exists() and log_file.stat().st_size:
        log_file.replace(log_file.with_suffix(log_file.suffix + ".1"))  # keep the previous run's log once
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    return proc.pid


def reap(pid: int) -> None:
    """Collect a child that already exited (only when this process started it) so it is not a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(pid: int, marker: str, timeout_s: float = 30.0) -> str:
    """SIGTERM, wait up to timeout_s, then SIGKILL. Returns 'stopped', 'killed' or 'not running'."""
    if not is_ours(pid, marker):
        return "not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reap(pid)
        if not is_ours(pid, marker):
            return "stopped"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        reap(pid)
        if not is_ours(pid, marker):
            break
        time.sleep(0.1)
    return "killed"


def tail(path: Path, n: int = 40) -> str:
    """The last n lines of a text file ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=n))
    except OSError:
        return ""
