"""`mixlm services up|down|status|logs`: real Kafka and Cassandra from Maven jars, on loopback."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console

from mixlm.cli import settings_of
from mixlm.errors import ServiceError
from mixlm.services import lifecycle, process
from mixlm.services.servers import NAMES, servers

_only = click.option("--only", type=click.Choice(NAMES), multiple=True, help="Act on this server only (repeatable).")


def _selected(ctx: click.Context, only: tuple[str, ...]):
    all_servers = servers(settings_of(ctx))
    return [all_servers[n] for n in (only or NAMES)]


@click.group()
def services() -> None:
    """Run Apache Kafka (KRaft) and Apache Cassandra locally from their Maven Central jars.

    Files live under <home>/services/<name>/ (jars, configs, data, logs, pid).
    """


@services.command()
@_only
@click.option("--record", is_flag=True, help="Append the start-up times to bench/RESULTS.md.")
@click.pass_context
def up(ctx: click.Context, only: tuple[str, ...], record: bool) -> None:
    """Fetch, configure and start the servers in the background; reuse the ones already running."""
    settings = settings_of(ctx)
    chosen = _selected(ctx, only)
    t_start = time.monotonic()
    rows = []
    status = Console(stderr=True).status("")  # a spinner while jars download and JVMs boot (tens of seconds)
    try:
        status.start()
        # prepare everything (jar fetches), then launch, then wait: both JVMs boot at the same time
        running = {s.name: lifecycle.running_pid(s) for s in chosen}
        fetched = {}
        for server in chosen:
            if not running[server.name]:
                status.update(f"preparing {server.name} (the first run fetches its jars from Maven Central)")
                fetched[server.name] = lifecycle.prepare(server, settings)
                if fetched[server.name] > 1.0:
                    click.echo(f"{server.name}: fetched jars into {server.libs} in {fetched[server.name]:.1f} s")
        launched = [lifecycle.Launch(s, running[s.name], reused=True, t0=time.monotonic()) if running[s.name]
                    else lifecycle.launch(s, settings, fetched[s.name]) for s in chosen]
        for item in launched:
            status.update(f"waiting for {item.server.name} on {item.server.host}:{item.server.port}")
            answer, ready_s = lifecycle.wait_ready(item, settings.services_start_timeout_s)
            s = item.server
            how = "already running" if item.reused else f"started, answered in {ready_s:.1f} s"
            if not item.reused:
                rows.append([s.name, "yes" if item.fetched_s > 1.0 else "no", round(item.fetched_s, 1), round(ready_s, 1)])
            click.echo(f"{s.name:9} up  {s.host}:{s.port}  pid {item.pid}  {how}  ({answer})")
    except ServiceError as exc:
        status.stop()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        status.stop()
    names = {s.name for s in chosen}
    total_s = time.monotonic() - t_start
    click.echo(f"all up in {total_s:.1f} s. Point the platform at them with:")
    if record and rows:
        import os

        from bench.results import record as record_table

        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        record_table("Services start-up", ["server", "jars fetched", "fetch s", "start to answer s"], rows,
                     note=f"whole `up` {total_s:.1f} s; load average after {load}; home {settings.home}; "
                          f"fetch = mvn copy-dependencies (cold when the local Maven repository is empty)")
    if "kafka" in names:
        click.echo(f"  export MIXLM_KAFKA_BOOTSTRAP={settings.services_bind}:{settings.kafka_port}")
    if "cassandra" in names:
        click.echo(f"  export MIXLM_CASSANDRA_HOSTS='[\"{settings.services_bind}\"]' MIXLM_CASSANDRA_PORT={settings.cassandra_port}")


@services.command()
@_only
@click.pass_context
def down(ctx: click.Context, only: tuple[str, ...]) -> None:
    """Stop the servers this command started (SIGTERM, then SIGKILL after 30 s)."""
    for server in _selected(ctx, only):
        click.echo(f"{server.name:9} {lifecycle.bring_down(server)}")


@services.command()
@_only
@click.pass_context
def status(ctx: click.Context, only: tuple[str, ...]) -> None:
    """up/down per server (exit 1 when one is down)."""
    any_down = False
    for server in _selected(ctx, only):
        pid = lifecycle.running_pid(server)
        if pid and process.port_taken(server.host, server.port):
            state = lifecycle.read_state(server)
            since = f"since {state['started_at']}, answered {state['ready_s']} s after start" if state else "starting"
            click.echo(f"{server.name:9} up    {server.host}:{server.port}  pid {pid}  {since}")
        else:
            any_down = True
            click.echo(f"{server.name:9} {'starting' if pid else 'down'}")
    sys.exit(1 if any_down else 0)


@services.command()
@click.argument("name", type=click.Choice(NAMES), required=False)
@click.option("-n", "lines", type=int, default=40, show_default=True, help="Lines to show.")
@click.pass_context
def logs(ctx: click.Context, name: str | None, lines: int) -> None:
    """Tail a server's log (both when no NAME is given)."""
    for server in _selected(ctx, (name,) if name else ()):
        click.echo(f"==> {server.log_file} <==")
        click.echo(process.tail(server.log_file, lines), nl=False)
