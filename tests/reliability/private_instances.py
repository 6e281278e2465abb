"""Private Kafka/Cassandra instances for fault tests: their own home and ports, so stopping them never touches
the shared servers on 9092/9042. A plain module, not a conftest: the test folders share one module namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mixlm.settings import Settings

MIXLM = str(Path(sys.executable).parent / "mixlm")


def private_services(settings: Settings, server: str, *args: str) -> str:
    """`mixlm services ARGS --only SERVER` for the instance these settings describe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | {
        "MIXLM_HOME": str(settings.home),
        "MIXLM_KAFKA_PORT": str(settings.kafka_port),
        "MIXLM_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "MIXLM_KAFKA_HEAP_MB": str(settings.kafka_heap_mb),
        "MIXLM_CASSANDRA_PORT": str(settings.cassandra_port),
        "MIXLM_CASSANDRA_STORAGE_PORT": str(settings.cassandra_storage_port),
        "MIXLM_CASSANDRA_JMX_PORT": str(settings.cassandra_jmx_port),
        "MIXLM_CASSANDRA_HEAP_MB": str(settings.cassandra_heap_mb),
    }
    proc = subprocess.run([MIXLM, "services", *args, "--only", server], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# --- a secured private Cassandra: PasswordAuthenticator, optionally TLS on the native port ------------------
SUPERUSER = ("cassandra", "cassandra")  # Cassandra's built-in superuser, created at first start with auth on
STORE_PASSWORD = "mixlm-test-store"  # the throwaway keystore's password


def make_tls_files(folder: Path, name: str = "node") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (Java 17's keytool): (PKCS12 keystore for Cassandra, PEM CA file
    for clients)."""
    folder.mkdir(parents=True, exist_ok=True)
    keystore, ca = folder / f"{name}.p12", folder / f"{name}-ca.pem"
    common = ["-storepass", STORE_PASSWORD, "-keystore", str(keystore), "-storetype", "PKCS12", "-alias", name]
    subprocess.run(["keytool", "-genkeypair", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2",
                    "-dname", "CN=127.0.0.1", "-ext", "SAN=ip:127.0.0.1", "-keypass", STORE_PASSWORD, *common],
                   check=True, capture_output=True)
    subprocess.run(["keytool", "-exportcert", "-rfc", "-file", str(ca), *common], check=True, capture_output=True)
    return keystore, ca


def _secure(yaml: str, keystore: Path | None) -> str:
    yaml = yaml.replace("authenticator: AllowAllAuthenticator", "authenticator: PasswordAuthenticator")
    if keystore is not None:  # TLS only on the native port (optional: false refuses plaintext clients)
        yaml += (f"\nclient_encryption_options:\n  enabled: true\n  optional: false\n  keystore: {keystore}\n"
                 f"  keystore_password: {STORE_PASSWORD}\n  store_type: PKCS12\n  require_client_auth: false\n")
    return yaml


def secured_cassandra_up(settings: Settings, keystore: Path | None = None, timeout_s: float = 240) -> None:
    """Start the private Cassandra these settings describe with PasswordAuthenticator (and TLS from keystore),
    in-process with `mixlm services`' own functions: its readiness probe has no credentials, so the start-up
    is awaited here with the superuser's."""
    import time

    from feature_store.cassandra import CassandraStore
    from mixlm.services import lifecycle, process, servers

    server = servers.servers(settings)["cassandra"]
    lifecycle.prepare(server, settings)  # jars, rendered configs
    conf = server.conf / "cassandra.yaml"
    conf.write_text(_secure(conf.read_text(), keystore))
    cmd = servers.command(server, settings, servers.java_bin())
    cmd.insert(cmd.index("-cp"), "-Dcassandra.superuser_setup_delay_ms=0")  # the default superuser at once
    pid = process.start_detached(cmd, server.log_file, cwd=server.root)
    server.pid_file.write_text(f"{pid}\n")
    probe = CassandraStore(settings.model_copy(update={"cassandra_username": SUPERUSER[0],
                                                        "cassandra_password": SUPERUSER[1]}))
    deadline, last = time.monotonic() + timeout_s, ""
    try:
        while True:
            try:
                probe.ping()
                return
            except Exception as exc:  # not up yet, or the superuser not created yet
                last = str(exc)
                probe.close()
            assert process.is_ours(pid, server.marker), process.tail(server.log_file, 40)
            assert time.monotonic() < deadline, f"secured Cassandra not ready: {last}\n{process.tail(server.log_file, 40)}"
            time.sleep(1)
    finally:
        probe.close()


def secured_cassandra_down(settings: Settings) -> None:
    from mixlm.services import lifecycle, servers

    lifecycle.bring_down(servers.servers(settings)["cassandra"])
