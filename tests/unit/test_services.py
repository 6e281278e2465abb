"""`mixlm services`: the parts that need no running server (config rendering, pid and port checks)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from mixlm.cli import cli
from mixlm.errors import ServiceError
from mixlm.services import lifecycle, process, servers
from mixlm.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, kafka_port=19092, kafka_controller_port=19093, cassandra_port=19042,
                    cassandra_storage_port=17000, cassandra_jmx_port=17199)


def test_render_fills_every_placeholder():
    assert servers.render("a={{x}} b={{y}}", {"x": 1, "y": "z"}) == "a=1 b=z"


def test_render_refuses_a_placeholder_without_value():
    with pytest.raises(ServiceError, match="port"):
        servers.render("listeners=PLAINTEXT://{{bind}}:{{port}}", {"bind": "127.0.0.1"})


def test_configs_render_from_deploy_templates_with_the_settings_ports(settings):
    all_servers = servers.servers(settings)
    for server in all_servers.values():
        servers.write_configs(server, settings)
    kafka_conf = (all_servers["kafka"].conf / "server.properties").read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in kafka_conf
    assert f"log.dirs={all_servers['kafka'].data}" in kafka_conf
    cassandra_yaml = (all_servers["cassandra"].conf / "cassandra.yaml").read_text()
    assert "native_transport_port: 19042" in cassandra_yaml and "storage_port: 17000" in cassandra_yaml
    assert "seeds: \"127.0.0.1:17000\"" in cassandra_yaml
    for server in all_servers.values():
        for conf in server.conf.iterdir():
            assert "{{" not in conf.read_text(), conf


def test_cassandra_command_has_the_java17_flags_small_heap_and_no_ring_delay(settings):
    server = servers.servers(settings)["cassandra"]
    servers.write_configs(server, settings)
    cmd = servers.command(server, settings, "java")
    assert cmd[-1] == "org.apache.cassandra.service.CassandraDaemon"
    assert {"-Xms512m", "-Xmx512m", "-Dcassandra.ring_delay_ms=0", "-Dcassandra.jmx.local.port=17199"} <= set(cmd)
    opens = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--add-opens"]
    assert "java.base/sun.nio.ch=ALL-UNNAMED" in opens  # without it: IllegalAccessException at boot
    assert server.marker in " ".join(cmd)  # lets `down` recognise the process as ours


def test_kafka_command_points_at_the_rendered_config(settings):
    server = servers.servers(settings)["kafka"]
    cmd = servers.command(server, settings, "java")
    assert cmd[-2:] == ["kafka.Kafka", str(server.conf / "server.properties")]
    assert "-Xmx512m" in cmd and server.marker in " ".join(cmd)


def test_read_flags_splits_options_and_skips_comments():
    text = "# comment\n\n--add-opens java.base/java.io=ALL-UNNAMED\n-Dio.netty.maxOrder=11\n"
    assert servers.read_flags(text) == ["--add-opens", "java.base/java.io=ALL-UNNAMED", "-Dio.netty.maxOrder=11"]


def test_port_taken_sees_a_listening_socket_and_a_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert process.port_taken("127.0.0.1", port)
    assert not process.port_taken("127.0.0.1", port)


def test_prepare_refuses_a_taken_port_with_a_clear_message(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", settings.kafka_port))
        s.listen()
        with pytest.raises(ServiceError, match="port 19092 .* taken"):
            lifecycle.prepare(servers.servers(settings)["kafka"], settings)


def test_pid_checks_and_stop_touch_only_our_process(tmp_path):
    marker = str(tmp_path / "conf")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        assert process.is_ours(proc.pid, marker)
        assert not process.is_ours(proc.pid, str(tmp_path / "someone-else"))
        assert process.stop(proc.pid, str(tmp_path / "someone-else")) == "not running"
        assert proc.poll() is None  # a pid that is not ours is never signalled
        assert process.stop(proc.pid, marker, timeout_s=10) == "stopped"
        assert proc.wait(timeout=5) is not None
    finally:
        proc.kill()


def test_down_with_a_stale_pid_file_stops_nothing_and_cleans_up(settings):
    server = servers.servers(settings)["kafka"]
    server.root.mkdir(parents=True)
    server.pid_file.write_text("1\n")  # pid 1 exists but is not our Kafka
    assert lifecycle.bring_down(server) == "not running"
    assert not server.pid_file.exists()


def test_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 2) == "line 98\nline 99\n"
    assert process.tail(tmp_path / "missing.log") == ""


def test_status_reports_down_and_exits_nonzero_when_nothing_runs(tmp_path):
    result = CliRunner().invoke(cli, ["services", "status"], env={"MIXLM_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "kafka     down" in result.output and "cassandra down" in result.output


def test_up_without_java_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    result = CliRunner().invoke(cli, ["services", "up", "--only", "kafka"], env={"MIXLM_HOME": str(tmp_path)})
    assert result.exit_code == 1 and "java" in result.output and "not found" in result.output


def test_a_server_that_exits_during_start_up_fails_with_its_log_tail(settings):
    server = servers.servers(settings)["cassandra"]  # port 19042: nothing listens there
    server.root.mkdir(parents=True)
    script = "import sys; print('Exception encountered during startup: bad yaml'); sys.exit(3)"
    pid = process.start_detached([sys.executable, "-c", script, server.marker], server.log_file, cwd=server.root)
    server.pid_file.write_text(f"{pid}\n")
    launched = lifecycle.Launch(server, pid, reused=False, t0=time.monotonic())
    with pytest.raises(ServiceError, match="(?s)exited during start-up.*bad yaml"):
        lifecycle.wait_ready(launched, timeout_s=60)
    assert not server.pid_file.exists()
