"""Shared fixtures. Integration tests use the stack instance that scripts/test brings up (its name is
LOGLAKE_STACK_NAME, `test` there, with every port + LOGLAKE_TEST_PORT_OFFSET, 1000 by default); tests
marked `stack` or `faults` start instances of their own beside it with `extra_stack`, at that offset
plus their own, so nothing the tests start meets docker compose or a `scripts/stack up` of the user.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# PYTHON, REPO and clean_env are imported from here by test modules that run commands of their own.
from tests.processes import PYTHON as PYTHON
from tests.processes import REPO, Processes
from tests.processes import clean_env as clean_env

STACK_NAME = os.environ.get("LOGLAKE_STACK_NAME", "default")
# Every port of every instance the tests start is moved by this much (scripts/test sets 1000).
BASE_OFFSET = int(os.environ.get("LOGLAKE_TEST_PORT_OFFSET", "0"))


def stack(
    *args: str, name: str = STACK_NAME, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run scripts/stack for instance `name` (default: the suite's own); its output is captured."""
    result = subprocess.run(
        [str(REPO / "scripts" / "stack"), "--name", name, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"scripts/stack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def read_stack_env(name: str = STACK_NAME) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in stack("env", name=name).stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return env


def settings_of(env: dict[str, str]) -> tuple[Any, Any]:
    """(KafkaSettings, LakeSettings) of a stack's environment, as `loglake.verify.verify` takes them."""
    from loglake.settings import KafkaSettings, LakeSettings, Secret

    kafka = KafkaSettings(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    lake = LakeSettings(
        endpoint_url=env["AWS_ENDPOINT_URL"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=Secret(env["AWS_SECRET_ACCESS_KEY"]),
        bucket=env["LAKE_BUCKET"],
    )
    return kafka, lake


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """Environment variables of the running default stack (as `scripts/stack env` prints them)."""
    status = stack("status", check=False)
    if status.returncode != 0:
        pytest.fail(
            f"the stack instance {STACK_NAME!r} is not up: run the tests with scripts/test, which starts it\n"
            + status.stdout
        )
    return read_stack_env()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Starts the producers and writers a test needs (tests/processes.py), their output in tmp_path;
    when the test ends, passed or failed, whatever still runs is SIGKILLed and reaped."""
    started = Processes(tmp_path)
    yield started
    started.reap()


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """`processes` for a module-scoped fixture (a lake landed once for a module's tests): the same
    helper, its output in a folder of its own, whatever still runs reaped when the module ends."""
    started = Processes(tmp_path_factory.mktemp("processes"))
    yield started
    started.reap()


@pytest.fixture(scope="session")
def admin(stack_env: dict[str, str]):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": stack_env["KAFKA_BOOTSTRAP_SERVERS"]})


def create_topic(
    bootstrap: str,
    partitions: int = 3,
    replication: int = 1,
    name: str | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = name or f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(name, partitions, replication, config=extra or {})])[name]
    future.result(timeout=30)
    return name


def new_topic_in(env: dict[str, str], partitions: int = 3, with_dlq: bool = True) -> str:
    """The name of a fresh topic (and its `.dlq` sibling) on the Kafka of a stack environment."""
    name = create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], partitions)
    if with_dlq:
        create_topic(env["KAFKA_BOOTSTRAP_SERVERS"], partitions, name=name + ".dlq")
    return name


@pytest.fixture
def new_topic(stack_env: dict[str, str]) -> Callable[..., str]:
    """Factory: new_topic(partitions=3) -> the name of a fresh topic (and its `.dlq` sibling)."""

    def make(partitions: int = 3, with_dlq: bool = True) -> str:
        return new_topic_in(stack_env, partitions, with_dlq)

    return make


def s3_client(env: dict[str, str]):
    """A boto3 S3 client for the lake of a stack environment (as `scripts/stack env` prints it)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def s3(stack_env: dict[str, str]):
    return s3_client(stack_env)


# Extra stack instances: each name gets its own port offset (+ BASE_OFFSET) so none collides with another.
_OFFSETS = {
    "zk3": 100,
    "kraft1": 200,
    "kraft3": 300,
    "secure": 400,
    "faults": 500,
    "lakeout": 600,
    "zkfault": 700,
    "w1": 800,
    "east": 900,  # tests/test_geo.py: two regions and MirrorMaker 2 between them
    "west": 950,
    "minio": 50,  # tests/test_stack.py: MinIO as the lake, and PostgreSQL
    "miniolake": 150,  # the tests that run on both S3 servers: their MinIO side (`lake_env`)
    "pgtable": 250,  # tests/test_table_writer.py: the Iceberg table on the stack's PostgreSQL
}


@contextlib.contextmanager
def extra_stack(name: str, *up_args: str, timeout: float = 600) -> Iterator[dict[str, str]]:
    """Bring up a private instance, yield its environment, always stop and wipe it afterwards."""
    offset = BASE_OFFSET + _OFFSETS[name]
    stack("down", "--wipe", name=name, check=False)
    try:
        stack("up", "--port-offset", str(offset), *up_args, name=name, timeout=timeout)
        yield read_stack_env(name)
    finally:
        stack("down", "--wipe", name=name, check=False)


# ------------------------------------------------------------------ tests that run on both S3 servers
# A test that takes `lake_env` runs twice: on the suite's stack (versitygw) and on a stack whose lake is
# MinIO. Which tests do, and why those: docs/development.md ("versitygw and MinIO").
MINIO = pytest.mark.minio  # runs on MinIO: built once per session before the first such test (below)


@pytest.fixture(scope="session")
def minio_stack_env() -> Iterator[dict[str, str]]:
    """An instance whose lake is MinIO (`miniolake`), started when the first test needs it and kept
    until the session ends: one warm start per run, not one per test or module."""
    with extra_stack("miniolake", "--s3", "minio") as env:
        yield env


@pytest.fixture(
    params=["versitygw", pytest.param("minio", marks=[MINIO, pytest.mark.stack])],
)
def s3_server(request: pytest.FixtureRequest) -> str:
    """Which S3 server the test's lake is (its id in the test's name)."""
    return request.param


@pytest.fixture
def lake_env(s3_server: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The stack environment of the test's S3 server: the suite's stack, or the MinIO instance."""
    return request.getfixturevalue("stack_env" if s3_server == "versitygw" else "minio_stack_env")


def pytest_collection_finish(session: pytest.Session) -> None:
    """MinIO is built (first use: minutes, docs/native-stack.md) once per run, here, before the first
    test, when any selected test runs on it: no test's time bound pays for the build, and the
    instances that run it only start it. Built already: nothing to do, nothing said."""
    if session.config.option.collectonly or not any(i.get_closest_marker("minio") for i in session.items):
        return
    from loglake.stack import fetch

    cache = Path(os.environ.get("LOGLAKE_STACK_HOME", REPO / ".stack")) / "cache"
    built = (cache / f"{fetch.MINIO.name}-{fetch.MINIO.version}" / "built-with.txt").exists()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not built and reporter is not None:
        reporter.write_line(f"building MinIO {fetch.MINIO.version} for the tests that run on it (first use)")
    started = time.monotonic()
    fetch.minio_binary(cache)
    if not built and reporter is not None:
        reporter.write_line(f"built MinIO in {time.monotonic() - started:.0f} s")


# One row per fault scenario for the README's "Measured under faults" table, written to
# RESULTS_FILE at the end of a session that ran any (`scripts/test -m faults` refreshes it).
RESULTS_FILE = REPO / ".stack" / "faults-results.md"
RESULTS: list[str] = []


def record(scenario: str, produced: int, acked: int, totals: dict[str, int], recover: str) -> None:
    RESULTS.append(
        f"| {scenario} | {produced:,} | {acked:,} | {totals['in_lake']:,} | {totals['duplicated']} "
        f"| {totals['dead']:,} | {recover} |\n"
    )


@pytest.fixture(scope="session", autouse=True)
def results_table() -> Iterator[None]:
    yield
    if RESULTS:
        RESULTS_FILE.parent.mkdir(exist_ok=True)
        header = (
            "| scenario | events | acknowledged | in lake | duplicates | dead letters | time to recover |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        RESULTS_FILE.write_text(header + "".join(RESULTS))


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
