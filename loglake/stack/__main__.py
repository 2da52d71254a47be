"""`scripts/stack`: Kafka, ZooKeeper and an S3 server, natively, without Docker.

    scripts/stack up [--mode zookeeper|kraft] [--brokers 1|3] [--secure] [--s3 versitygw|minio]
                     [--postgres] [--port-offset N]
    scripts/stack env [--compose | --unset] | status | down [--wipe]
    scripts/stack kill NAME [--signal TERM]   |   scripts/stack start NAME
    scripts/stack kafka TOOL ARGS...          (kafka-topics, kafka-console-consumer, ...)
    scripts/stack mirror SOURCE TARGET [--topics log-data]   MirrorMaker 2 between two instances

`--name NAME` (before the command) selects another instance: the default one uses the ports of
docker-compose.yml; others, started with `--port-offset`, run beside it (the tests do this).
`mirror` copies topics and consumer-group offsets from instance SOURCE to instance TARGET (both up,
e.g. `east` and `west`); `status` of either shows it and its lag, `down` of either stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from loglake import defaults
from loglake.errors import run_cli, setup_logging
from loglake.stack import fetch, kafka_servers, mirror, object_store, postgres
from loglake.stack.cluster import StackConfig
from loglake.stack.environment import ENV_NAMES, compose_env_lines, env_lines
from loglake.stack.process import StackError
from loglake.stack.services import Instance

# ENV_NAMES: every variable `env` may print; tests/conftest.py clears them (imported from here).
__all__ = ["ENV_NAMES", "main"]

log = logging.getLogger("loglake.stack")
REPO = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--name",
        default=os.environ.get("LOGLAKE_STACK_NAME", "default"),
        help="stack instance (default: default) [env LOGLAKE_STACK_NAME]",
    )
    p.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("LOGLAKE_STACK_HOME", REPO / ".stack")),
        help="folder for the cache, data and logs (default: .stack) [env LOGLAKE_STACK_HOME]",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack (idempotent) and wait until every service answers")
    up.add_argument(
        "--mode",
        choices=["zookeeper", "kraft"],
        default="zookeeper",
        help=f"zookeeper: Kafka {defaults.KAFKA_ZOOKEEPER_MODE_VERSION} + ZooKeeper "
        f"{defaults.ZOOKEEPER_VERSION}; kraft: Kafka {defaults.KAFKA_KRAFT_MODE_VERSION}",
    )
    up.add_argument("--brokers", type=int, choices=[1, 3], default=1)
    up.add_argument(
        "--secure", action="store_true", help="SASL/SCRAM-SHA-512 over TLS for Kafka clients, https for S3"
    )
    up.add_argument(
        "--s3",
        choices=defaults.S3_SERVERS,
        default="versitygw",
        help="the S3 server: versitygw (Apache-2.0, quick to build) or minio (the release "
        "docker-compose.yml runs, AGPL-3.0, its console on 9001 + offset)",
    )
    up.add_argument(
        "--postgres",
        action="store_true",
        help="also PostgreSQL on 5432 + offset, for the Iceberg catalog (Debian's package, installed "
        "with apt-get when missing); an instance keeps it once started with it",
    )
    up.add_argument("--port-offset", type=int, default=0, help="add N to every port")
    up.add_argument(
        "--partitions",
        type=int,
        default=defaults.TOPIC_PARTITIONS,
        help=f"partitions of topic {defaults.TOPIC}",
    )
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each service")
    env = sub.add_parser("env", help='print export lines for a shell: eval "$(scripts/stack env)"')
    which = env.add_mutually_exclusive_group()
    which.add_argument(
        "--compose",
        action="store_true",
        help="the variables for host programs against docker compose (ports of docker-compose.yml, keys from .env)",
    )
    which.add_argument(
        "--unset", action="store_true", help="unset lines for every variable `env` can set (after `down`)"
    )
    sub.add_parser("status", help="show each service; exit 0 only if all are up and answering")
    down = sub.add_parser("down", help="stop every service")
    down.add_argument("--wipe", action="store_true", help="also delete the data and logs")
    kill = sub.add_parser(
        "kill",
        help="stop one service hard (SIGKILL), for fault tests; mirror-SOURCE is a mirror into this instance",
    )
    kill.add_argument("service")
    kill.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
    start = sub.add_parser("start", help="start one stopped service and wait until it answers")
    start.add_argument("service")
    start.add_argument("--timeout", type=float, default=120.0)
    mm2 = sub.add_parser(
        "mirror", help="start MirrorMaker 2 from instance SOURCE into instance TARGET (both up; idempotent)"
    )
    mm2.add_argument("source", help=f"instance to copy from, e.g. {defaults.GEO_SOURCE}")
    mm2.add_argument("target", help=f"instance to copy into, e.g. {defaults.GEO_TARGET}")
    mm2.add_argument(
        "--topics",
        default=defaults.TOPIC,
        help=f"topics to copy: comma-separated names or regular expressions (default: {defaults.TOPIC})",
    )
    mm2.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the remote topics")
    tool = sub.add_parser("kafka", help="run one of Kafka's command-line tools from the same jars")
    tool.add_argument("tool", help=", ".join(sorted(fetch.TOOLS)))
    tool.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _load(home: Path, name: str) -> Instance | None:
    state = home / name / "stack.json"
    return Instance(home, StackConfig.load(state)) if state.exists() else None


def _require(home: Path, name: str) -> Instance:
    inst = _load(home, name)
    if inst is None:
        raise StackError(f"stack {name!r} has never been started; run: scripts/stack up")
    return inst


def cmd_up(home: Path, ns: argparse.Namespace) -> int:
    wanted = StackConfig(
        name=ns.name,
        mode=ns.mode,
        brokers=ns.brokers,
        port_offset=ns.port_offset,
        secure=ns.secure,
        partitions=ns.partitions,
        s3=ns.s3,
        postgres=ns.postgres,
    )
    existing = _load(home, ns.name)
    if existing and not existing.cfg.same_shape(wanted):
        if existing.running():
            raise StackError(
                f"stack {ns.name!r} is already up as {existing.cfg.describe()}; stop it and delete its "
                f"data first (a stack keeps one shape): scripts/stack --name {ns.name} down --wipe"
            )
        raise StackError(
            f"stack {ns.name!r} holds data of another shape ({existing.cfg.describe()}); "
            f"delete it first: scripts/stack --name {ns.name} down --wipe"
        )
    if existing:
        wanted.cluster_id, wanted.scram_password = existing.cfg.cluster_id, existing.cfg.scram_password
        wanted.postgres = wanted.postgres or existing.cfg.postgres  # `up` keeps what `up --postgres` added
    inst = Instance(home, wanted)
    inst.dir.mkdir(parents=True, exist_ok=True)
    wanted.save(inst.dir / "stack.json")
    (inst.dir / "stack.json").chmod(0o600)

    started = time.monotonic()
    object_store.binary(inst)
    fetch.kafka_libs(inst.cache, wanted.kafka_version)
    if wanted.mode == "zookeeper":
        fetch.zookeeper_libs(inst.cache, defaults.ZOOKEEPER_VERSION)
    if wanted.postgres:
        postgres.bin_dir()
    inst.ensure_tls()
    fetched = time.monotonic() - started

    inst.start("s3", ns.timeout)
    if wanted.postgres:
        inst.start("postgres", ns.timeout)
    if wanted.mode == "zookeeper":
        inst.start("zookeeper", ns.timeout)
        if wanted.secure and not (inst.dir / ".scram-user").exists():
            kafka_servers.add_scram_user_zookeeper(inst)
            (inst.dir / ".scram-user").write_text("stored\n")
    brokers = [s for s in wanted.service_names() if s.startswith("kafka-")]
    _start_together(inst, brokers, ns.timeout)
    kafka_servers.create_topics(inst, ns.timeout)
    object_store.create_bucket(inst)
    kafka_servers.write_client_properties(inst)
    log.info(
        "stack %r is up: %s, in %.1fs (%.1fs of it fetching)",
        ns.name,
        wanted.describe(),
        time.monotonic() - started,
        fetched,
    )
    sys.stderr.write(
        f'stack {ns.name!r} up. Use it with:  eval "$(scripts/stack'
        f'{"" if ns.name == "default" else " --name " + ns.name} env)"\n'
    )
    return 0


def _start_together(inst: Instance, services: list[str], timeout: float) -> None:
    """Brokers of a KRaft quorum need each other to start: launch all, then wait for each."""
    errors: list[BaseException] = []

    def one(service: str) -> None:
        try:
            inst.start(service, timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def cmd_down(home: Path, ns: argparse.Namespace) -> int:
    inst = _load(home, ns.name)
    if inst is None:
        log.info("stack %r is not there; nothing to stop", ns.name)
        return 0
    for m in mirror.mirrors_touching(home, ns.name):
        m.stop()
    brokers = [s for s in inst.cfg.service_names() if s.startswith("kafka-")]
    threads = [threading.Thread(target=inst.stop, args=(s,)) for s in brokers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for service in ("zookeeper", "s3", "postgres"):
        inst.stop(service)
    if ns.wipe:
        postgres.wipe(inst)
        shutil.rmtree(inst.dir, ignore_errors=True)
        log.info("stack %r stopped and its data deleted", ns.name)
    else:
        log.info("stack %r stopped (data kept; `down --wipe` deletes it)", ns.name)
    return 0


def cmd_env(home: Path, ns: argparse.Namespace) -> int:
    if ns.unset:
        lines = ["unset " + " ".join(ENV_NAMES)]
    elif ns.compose:
        lines = compose_env_lines(REPO)
    else:
        lines = env_lines(_require(home, ns.name))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_status(home: Path, ns: argparse.Namespace) -> int:
    inst = _load(home, ns.name)
    if inst is None:
        sys.stdout.write(f"stack {ns.name!r}: not started\n")
        return 1
    lines = [f"stack {ns.name!r}: {inst.cfg.describe()}"]
    all_up = True
    for service in inst.cfg.service_names():
        pid = inst.pid(service)
        state = (
            "answering" if pid and inst.healthy(service) else "running, not answering" if pid else "stopped"
        )
        all_up &= state == "answering"
        lines.append(
            f"  {service:<10} 127.0.0.1:{inst.cfg.port_of(service):<6} pid {pid or '-':<8} "
            f"{state:<22} log {inst.log_path(service)}"
        )
        if service == "s3" and inst.cfg.s3_console_port:
            scheme = "https" if inst.cfg.secure else "http"
            lines.append(f"  {'':<10} console {scheme}://127.0.0.1:{inst.cfg.s3_console_port} (MinIO)")
        if service == "postgres":
            lines.append(f"  {'':<10} {postgres.uri(inst)}")
    for m in mirror.mirrors_touching(home, ns.name):
        lines.append(m.status_line())
        all_up &= m.pid() is not None
    # one write once every probe has answered: a reader that stops early (`| head`) gets whole lines
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if all_up else 1


def cmd_kafka(home: Path, ns: argparse.Namespace) -> int:
    inst = _load(home, ns.name) or Instance(home, StackConfig(name=ns.name))
    libs = fetch.kafka_libs(inst.cache, inst.cfg.kafka_version)
    kafka_servers.exec_tool(inst, libs, ns.tool, ns.args)  # returns only by raising
    return 1


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    setup_logging(verbose=ns.verbose)
    logging.getLogger("loglake").setLevel(logging.DEBUG if ns.verbose else logging.INFO)
    home: Path = ns.home
    if ns.command == "up":
        return cmd_up(home, ns)
    if ns.command == "down":
        return cmd_down(home, ns)
    if ns.command == "env":
        return cmd_env(home, ns)
    if ns.command == "status":
        return cmd_status(home, ns)
    if ns.command == "kill":
        inst = _require(home, ns.name)
        mirrors = {m.service: m for m in mirror.mirrors_touching(home, ns.name) if m.target_name == ns.name}
        if ns.service not in [*inst.cfg.service_names(), *mirrors]:
            names = ", ".join([*inst.cfg.service_names(), *mirrors])
            raise StackError(f"no service {ns.service!r}; services: {names}")
        sig = signal.SIGKILL if ns.signal == "KILL" else signal.SIGTERM
        if ns.service in mirrors:  # the link between two regions; `mirror SOURCE TARGET` starts it again
            mirrors[ns.service].stop(sig)
        else:
            inst.stop(ns.service, sig)
        log.info("%s stopped (SIG%s)", ns.service, ns.signal)
        return 0
    if ns.command == "mirror":
        mirror.Mirror(home, ns.source, ns.target).start(ns.topics, ns.timeout)
        return 0
    if ns.command == "start":
        _require(home, ns.name).start(ns.service, ns.timeout)
        return 0
    return cmd_kafka(home, ns)


if __name__ == "__main__":
    sys.exit(run_cli(main))
