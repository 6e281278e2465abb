"""Kafka (KRaft, one node) and Cassandra as run by `mixlm services`: where their files live, how their
configs are rendered from deploy/ templates, how their jars are fetched and what command starts them.
The recipe (flags, heaps, ring_delay_ms=0, ...) is the one checked in notes/services.md."""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mixlm.errors import ServiceError
from mixlm.settings import Settings

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
NAMES = ("kafka", "cassandra")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, values: dict[str, object]) -> str:
    """Fill {{name}} placeholders; a placeholder without a value is an error, not an empty string."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise ServiceError(f"config template needs values for {missing}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def read_flags(text: str) -> list[str]:
    """JVM options file (one or two tokens a line, # comments) -> argv list."""
    args: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            args += shlex.split(line)
    return args


@dataclass
class Server:
    """One server's files under <home>/services/<name>/ and what it listens on."""

    name: str
    root: Path
    host: str
    port: int  # the client port that `up` waits on
    other_ports: list[int] = field(default_factory=list)
    main_class: str = ""

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def marker(self) -> str:
        """A string only our server's command line contains (its conf dir), for pid checks."""
        return str(self.conf)

    @property
    def ports(self) -> list[int]:
        return [self.port, *self.other_ports]


def servers(settings: Settings) -> dict[str, Server]:
    base = Path(settings.home) / "services"
    bind = settings.services_bind
    return {
        "kafka": Server("kafka", base / "kafka", bind, settings.kafka_port, [settings.kafka_controller_port], "kafka.Kafka"),
        "cassandra": Server("cassandra", base / "cassandra", bind, settings.cassandra_port,
                            [settings.cassandra_storage_port, settings.cassandra_jmx_port],
                            "org.apache.cassandra.service.CassandraDaemon"),
    }


def java_bin() -> str:
    java = shutil.which("java")
    if not java:
        raise ServiceError("`java` not found on PATH: Kafka and Cassandra need Java 17 (apt-get install openjdk-17-jre-headless)")
    return java


def fetch_jars(server: Server, deploy_dir: Path = DEPLOY_DIR) -> bool:
    """mvn dependency:copy-dependencies into server.libs, once per pom version. True when it fetched."""
    pom = deploy_dir / "pom.xml"
    if not pom.exists():
        raise ServiceError(f"{pom} is missing: run from a checkout of the repository")
    stamp = hashlib.sha256(pom.read_bytes()).hexdigest()[:16] + ":" + server.name
    marker = server.libs / ".fetched"
    if marker.exists() and marker.read_text() == stamp:
        return False
    mvn = shutil.which("mvn")
    if not mvn:
        raise ServiceError("`mvn` not found on PATH: it fetches the Kafka and Cassandra jars (apt-get install maven)")
    if server.libs.exists():
        shutil.rmtree(server.libs)  # the pom changed: no stale jar may stay on the classpath
    server.libs.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", "-f", str(pom), "-P", server.name, "dependency:copy-dependencies",
           f"-DoutputDirectory={server.libs}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not any(server.libs.glob("*.jar")):
        raise ServiceError(f"fetching {server.name} jars failed ({' '.join(cmd)}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    marker.write_text(stamp)
    return True


def write_configs(server: Server, settings: Settings, deploy_dir: Path = DEPLOY_DIR) -> None:
    """Render deploy/<name>/* into server.conf (every start, so Settings changes take effect)."""
    values = {"bind": server.host, "port": server.port, "data_dir": server.data,
              "controller_port": settings.kafka_controller_port, "storage_port": settings.cassandra_storage_port}
    server.conf.mkdir(parents=True, exist_ok=True)
    server.data.mkdir(parents=True, exist_ok=True)
    for template in sorted((deploy_dir / server.name).iterdir()):
        (server.conf / template.name).write_text(render(template.read_text(), values))


def kafka_format_storage(server: Server, java: str) -> bool:
    """KRaft needs its log dir formatted with a cluster id once; True when it formatted now."""
    if (server.data / "meta.properties").exists():
        return False
    classpath = f"{server.libs}/*"
    cid = _run([java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], server).strip().splitlines()[-1]
    _run([java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cid,
          "-c", str(server.conf / "server.properties")], server)
    return True


def _run(cmd: list[str], server: Server) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=server.root)
    if proc.returncode != 0:
        raise ServiceError(f"{' '.join(cmd[-4:])} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def command(server: Server, settings: Settings, java: str) -> list[str]:
    """The java command line that runs the server in the foreground of its own session."""
    if server.name == "kafka":
        return [java, "-Xms256m", f"-Xmx{settings.kafka_heap_mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile=file://{server.conf / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={server.log_file.parent}", "-cp", f"{server.libs}/*",
                server.main_class, str(server.conf / "server.properties")]
    heap = f"{settings.cassandra_heap_mb}m"
    return [java, *read_flags((server.conf / "jvm17-server.options").read_text()),
            f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
            f"-Dcassandra.config=file://{server.conf / 'cassandra.yaml'}", "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={server.data}", f"-Dcassandra.logdir={server.log_file.parent}",
            f"-Dlogback.configurationFile=file://{server.conf / 'logback.xml'}",
            f"-Dcassandra.jmx.local.port={settings.cassandra_jmx_port}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=0",  # first boot 38.5 s -> ~4 s on one node (notes/services.md)
            "-Djava.net.preferIPv4Stack=true",
            "-cp", f"{server.libs}/*:{server.conf}", server.main_class]
