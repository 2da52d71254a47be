"""The native stack is real: Kafka round trips on each mode, S3 put/get/list, replication under broker loss,
MinIO as the lake (what it answers beside versitygw, a write and verify round trip, lake-sql),
PostgreSQL for the Iceberg catalog, and Kafka's tools stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest
import yaml

from loglake import defaults
from loglake.settings import LakeSettings, Secret
from loglake.stack import fetch
from loglake.stack.cluster import StackConfig, kafka_properties
from loglake.stack.environment import ENV_NAMES, ICEBERG_KEYS, compose_env_lines, env_lines, env_values
from loglake.stack.services import Instance
from loglake.table.catalog import catalog_settings
from tests.conftest import (
    BASE_OFFSET,
    MINIO,
    REPO,
    create_topic,
    extra_stack,
    read_stack_env,
    s3_client,
    stack,
)
from tests.processes import Processes
from tests.waiting import KafkaProbe, kafka_errors, wait_until

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())

# ---------------------------------------------------------------------------------------- unit


def test_ports_follow_the_offset_and_compose_defaults():
    cfg = StackConfig(brokers=3, port_offset=100)
    assert [cfg.kafka_port(n) for n in (1, 2, 3)] == [9192, 9193, 9194]
    assert cfg.s3_port == 9100 and cfg.zookeeper_port == 2281
    assert cfg.bootstrap_servers == "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    assert StackConfig().bootstrap_servers == "127.0.0.1:9092"


def test_kraft_cluster_ids_never_start_with_a_dash():
    # kafka-storage takes `-t -xyz...` for an option; one random id in 64 started with `-` before
    ids = [StackConfig().cluster_id for _ in range(5_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert {len(i) for i in ids} == {22} and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)


def test_three_brokers_replicate_three_ways_with_two_in_sync(tmp_path):
    text = kafka_properties(StackConfig(brokers=3), 2, tmp_path, tmp_path)
    assert "broker.id=2" in text
    assert "default.replication.factor=3" in text and "min.insync.replicas=2" in text
    assert "zookeeper.connect=127.0.0.1:2181" in text
    assert "CLIENT://127.0.0.1:9093" in text and "0.0.0.0" not in text


def test_kraft_nodes_are_combined_broker_and_controller(tmp_path):
    text = kafka_properties(StackConfig(mode="kraft", brokers=3), 1, tmp_path, tmp_path)
    assert "process.roles=broker,controller" in text
    assert "controller.quorum.voters=1@127.0.0.1:29092,2@127.0.0.1:29093,3@127.0.0.1:29094" in text
    assert "zookeeper" not in text


def test_a_dead_broker_is_noticed_within_seconds(tmp_path):
    # Kafka's default ZooKeeper session (18 s) kept a killed broker's leaders for ~18 s
    assert "zookeeper.session.timeout.ms=6000" in kafka_properties(
        StackConfig(brokers=3), 1, tmp_path, tmp_path
    )


def test_env_for_compose_matches_its_published_ports_and_keys(tmp_path):
    (tmp_path / ".env").write_text("LAKE_ACCESS_KEY_ID=me\nLAKE_SECRET_ACCESS_KEY='s3cret'\n")
    lines = compose_env_lines(tmp_path)
    assert "export KAFKA_BOOTSTRAP_SERVERS=localhost:9092" in lines
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:9000" in lines
    assert "export AWS_ACCESS_KEY_ID=me" in lines and "export AWS_SECRET_ACCESS_KEY=s3cret" in lines
    assert lines[-1].startswith("unset ") and "KAFKA_SASL_PASSWORD" in lines[-1]


def test_env_for_compose_names_the_catalog_a_host_writer_falls_back_to(tmp_path):
    """After `eval "$(scripts/stack env --compose)"`, pyiceberg's `load_catalog("loglake")` in a program run
    from the same folder opens the catalog README's host writer commits to with nothing configured."""
    (tmp_path / ".env").write_text("LAKE_ACCESS_KEY_ID=me\nLAKE_SECRET_ACCESS_KEY=s3cret\n")
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in compose_env_lines(tmp_path)
        if line.startswith("export ")
    )
    printed = {prop: exported[name] for prop, name in ICEBERG_KEYS.items()}
    lake = LakeSettings(
        endpoint_url=exported["AWS_ENDPOINT_URL"],
        access_key_id=exported["AWS_ACCESS_KEY_ID"],
        secret_access_key=Secret(exported["AWS_SECRET_ACCESS_KEY"]),
        region=exported["AWS_DEFAULT_REGION"],
        bucket=exported["LAKE_BUCKET"],
    )
    assert printed == dict(catalog_settings(lake, {}).properties)
    assert printed["s3.access-key-id"] == "me" and printed["uri"] == "sqlite:///loglake-catalog.db"


def test_env_unset_covers_every_variable_a_secure_stack_exports(tmp_path):
    inst = Instance(tmp_path, StackConfig(secure=True))
    exported = {line.removeprefix("export ").split("=", 1)[0] for line in env_lines(inst)}
    assert exported <= set(ENV_NAMES)


def test_secure_listener_uses_scram_over_tls(tmp_path):
    text = kafka_properties(StackConfig(secure=True), 1, tmp_path, tmp_path)
    assert "CLIENT:SASL_SSL" in text and "sasl.enabled.mechanisms=SCRAM-SHA-512" in text


def test_compose_runs_the_minio_release_the_stack_builds():
    """The compose image's RELEASE tag and the Go module version `scripts/stack up --s3 minio` builds name
    the same release: the pseudo-version's timestamp is the release's, its commit the release's commit."""
    image = COMPOSE["services"]["minio"]["image"]
    tag = re.search(r":(RELEASE\.[0-9TZ-]+)@sha256:", image).group(1)
    day, clock = re.fullmatch(r"RELEASE\.(\d{4}-\d\d-\d\d)T(\d\d-\d\d-\d\d)Z", tag).groups()
    stamp, commit = re.fullmatch(r"v0\.0\.0-(\d{14})-([0-9a-f]{12})", fetch.MINIO.version).groups()
    assert stamp == day.replace("-", "") + clock.replace("-", ""), (tag, fetch.MINIO.version)
    assert tag == defaults.MINIO_RELEASE and defaults.MINIO_COMMIT.startswith(commit)
    assert fetch.MINIO.install_argv[-1] == f"github.com/minio/minio@{defaults.MINIO_MODULE_VERSION}"
    assert f"cmd.ReleaseTag={tag} " in fetch.MINIO.ldflags  # `minio --version` names the release


def test_topics_are_bounded_by_bytes_as_compose_bounds_them(tmp_path):
    broker = COMPOSE["x-kafka-env"]
    text = kafka_properties(StackConfig(), 1, tmp_path, tmp_path)
    assert f"log.retention.bytes={broker['KAFKA_LOG_RETENTION_BYTES']}\n" in text
    assert f"log.segment.bytes={broker['KAFKA_LOG_SEGMENT_BYTES']}\n" in text


def test_minio_listens_on_the_s3_and_console_ports_of_compose():
    cfg = StackConfig(s3="minio", port_offset=100)
    published = COMPOSE["services"]["minio"]["ports"]
    assert published == [f"127.0.0.1:{p}:{p}" for p in (defaults.S3_PORT, defaults.S3_CONSOLE_PORT)]
    assert cfg.ports_of("s3") == [9100, 9101]
    assert StackConfig().ports_of("s3") == [9100 - 100]  # versitygw: no console


def test_the_s3_server_is_part_of_an_instance_shape_and_postgres_is_not():
    assert not StackConfig().same_shape(StackConfig(s3="minio"))
    assert StackConfig().same_shape(StackConfig(postgres=True))
    assert StackConfig(postgres=True, port_offset=7).postgres_port == 5439
    assert "postgres" in StackConfig(postgres=True).service_names()


def test_env_names_every_catalog_property_as_pyiceberg_spells_it(tmp_path):
    """pyiceberg reads PYICEBERG_CATALOG__<NAME>__<KEY>: a `__` inside the key is a `.`, a `_` is a `-`."""
    for prop, name in ICEBERG_KEYS.items():
        head, catalog, key = name.split("__", 2)
        assert (head, catalog) == ("PYICEBERG_CATALOG", "LOGLAKE")
        assert key.lower().replace("__", ".").replace("_", "-") == prop
    values = env_values(Instance(tmp_path, StackConfig(name="x", port_offset=100)))
    assert values[ICEBERG_KEYS["uri"]] == f"sqlite:///{tmp_path.resolve()}/x/catalog.db"
    assert values[ICEBERG_KEYS["type"]] == "sql"
    assert values[ICEBERG_KEYS["warehouse"]] == "s3://datalake/iceberg"
    assert values[ICEBERG_KEYS["s3.endpoint"]] == "http://127.0.0.1:9100"
    assert values[ICEBERG_KEYS["s3.region"]] == defaults.REGION
    with_pg = env_values(Instance(tmp_path, StackConfig(name="x", port_offset=100, postgres=True)))
    assert (
        with_pg[ICEBERG_KEYS["uri"]]
        == "postgresql+psycopg://loglake:loglake-dev-secret@127.0.0.1:5532/loglake"
    )
    assert set(with_pg) <= set(ENV_NAMES)


# --------------------------------------------------------------------------------- integration


def kafka_python_round_trip(env: dict[str, str], replication: int = 1) -> None:
    """Produce one record with kafka-python and read it back: key, value, timestamp, headers intact."""
    from kafka import KafkaConsumer, KafkaProducer

    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = create_topic(bootstrap, partitions=1, replication=replication)
    stamp = 1_700_000_000_123
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(
        topic,
        key=b"user-42",
        value=b'{"hello":"lake"}',
        timestamp_ms=stamp,
        headers=[("content-type", b"application/json")],
    ).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert record.key == b"user-42"
    assert record.value == b'{"hello":"lake"}'
    assert record.timestamp == stamp
    assert list(record.headers) == [("content-type", b"application/json")]


@pytest.mark.integration
def test_kafka_round_trip_zookeeper_mode(stack_env):
    kafka_python_round_trip(stack_env)


@pytest.mark.integration
def test_default_stack_has_topic_and_bucket(stack_env, admin, s3):
    topics = admin.list_topics(timeout=10).topics
    assert len(topics["log-data"].partitions) == 3
    assert "log-data.dlq" in topics
    assert "datalake" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, "log-data")
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["retention.bytes"].value == str(defaults.TOPIC_RETENTION_BYTES)  # bounded, as compose's
    assert config["segment.bytes"].value == str(defaults.TOPIC_SEGMENT_BYTES)


@pytest.mark.integration
def test_s3_put_get_list(stack_env, s3):
    key = f"stack-test/{uuid.uuid4().hex}/a.json"
    s3.put_object(Bucket="datalake", Key=key, Body=b'{"a":1}\n', Metadata={"loglake-records": "1"})
    got = s3.get_object(Bucket="datalake", Key=key)
    assert got["Body"].read() == b'{"a":1}\n'
    assert got["Metadata"]["loglake-records"] == "1"
    listed = s3.list_objects_v2(Bucket="datalake", Prefix=key.rsplit("/", 1)[0])
    assert [o["Key"] for o in listed["Contents"]] == [key]
    s3.delete_object(Bucket="datalake", Key=key)


@pytest.mark.integration
def test_up_twice_starts_no_second_copy(stack_env):
    before = stack("status").stdout
    stack("up", "--port-offset", str(BASE_OFFSET))  # the suite's instance runs at the test offset
    assert stack("status").stdout == before  # same pids, all answering


@pytest.mark.integration
def test_sigterm_to_a_kafka_tool_leaves_no_java_behind(stack_env):
    """`scripts/stack kafka TOOL` becomes the tool's JVM (exec): SIGTERM reaches Java itself, and no
    child is left running under PID 1."""
    topic = create_topic(stack_env["KAFKA_BOOTSTRAP_SERVERS"], 1)
    group = f"sigterm-{uuid.uuid4().hex[:8]}"
    tool = subprocess.Popen(
        [str(REPO / "scripts" / "stack"), "--name", os.environ.get("LOGLAKE_STACK_NAME", "default"), "kafka",
         "kafka-console-consumer", "--bootstrap-server", stack_env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", topic,
         "--group", group],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def javas() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if group in cmdline and any(part.endswith("java") for part in cmdline[:1]):
                found.append(proc)
        return found

    try:
        started = wait_until(javas, 60, "the console consumer's JVM", alive=[tool])
        assert [p.pid for p in started] == [tool.pid]  # the command itself became the JVM
        tool.send_signal(signal.SIGTERM)
        tool.wait(30)
        wait_until(lambda: [p for p in javas() if p.is_running()], 30, "no JVM of the tool left",
                   ok=lambda left: not left)  # fmt: skip
    finally:
        for proc in javas():
            proc.kill()
        if tool.poll() is None:
            tool.kill()


@pytest.mark.integration
def test_port_taken_by_another_program_is_a_clear_error(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))  # a port the system gave us, held by this "other program"
        blocker.listen()
        taken = blocker.getsockname()[1]
        offset = taken - 9000  # instance 'blocked' wants its S3 server on 9000 + offset
        stack(
            "down", "--wipe", name="blocked", check=False
        )  # a run cut short may have left one of another shape
        result = stack("up", "--port-offset", str(offset), name="blocked", check=False)
    stack("down", "--wipe", name="blocked", check=False)
    assert result.returncode != 0
    assert f"port {taken} (s3) is already in use" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------- extra stack instances


@pytest.mark.stack
def test_kafka_round_trip_kraft_mode():
    with extra_stack("kraft1", "--mode", "kraft") as env:
        kafka_python_round_trip(env)
        assert "Kafka 4." in stack("status", name="kraft1").stdout


@pytest.mark.stack
def test_three_brokers_keep_accepting_acks_all_writes_when_one_dies():
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    with extra_stack("zk3", "--brokers", "3") as env:
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        kafka_python_round_trip(env, replication=3)
        topic = create_topic(bootstrap, partitions=3, replication=3)
        stack("kill", "kafka-2", name="zk3")
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 60000,
            }
        )
        failures: list[object] = []
        for i in range(300):
            producer.produce(
                topic, value=b"%d" % i, on_delivery=lambda err, _msg: failures.append(err) if err else None
            )
        assert producer.flush(90) == 0
        assert failures == []
        # the topic's own count, not the client's; a fresh client's metadata may lag the leader moves
        # of the kill for a moment ("Unknown partition"): asked again then
        probe = KafkaProbe(bootstrap)
        wait_until(lambda: probe.in_topic(topic), 30, "the topic's count of the 300 acknowledged records",
                   ok=lambda n: n == 300, retry_on=kafka_errors())  # fmt: skip
        stack("start", "kafka-2", name="zk3")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait_until(
            lambda: {
                p.id: sorted(p.isrs)
                for p in admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
            },
            90,
            f"kafka-2 to rejoin the in-sync replicas of every partition of {topic} (partition: ISR)",
            ok=lambda isrs: len(isrs) == 3 and all(len(isr) == 3 for isr in isrs.values()),
            interval=1,
            retry_on=kafka_errors(),
        )
        assert read_stack_env("zk3")["KAFKA_BOOTSTRAP_SERVERS"].count(",") == 2


# ------------------------------------------------------------------- MinIO and PostgreSQL

MINIO_EVENTS = 5_000
# The MinIO tests carry the `minio` mark: MinIO is built once per run before the first of them
# (tests/conftest.py), so they only start it, within the suite's usual bounds.


@pytest.fixture(scope="module")
def minio_env() -> Iterator[dict[str, str]]:
    """An instance whose lake is MinIO, with PostgreSQL; `down` is seen to stop every service of it."""
    with extra_stack("minio", "--s3", "minio", "--postgres", timeout=1500) as env:
        yield env
        stack("down", name="minio")
        states = stack("status", name="minio", check=False).stdout
        assert re.findall(r"^  (\S+) .* (stopped) ", states, re.M) == [
            (s, "stopped") for s in ("s3", "zookeeper", "kafka-1", "postgres")
        ], states


@pytest.fixture(
    params=[
        pytest.param("versitygw", marks=pytest.mark.integration),
        pytest.param("minio", marks=[pytest.mark.stack, MINIO]),
    ]
)
def server(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(name, boto3 client) of each S3 server: the suite's versitygw, and MinIO."""
    env = request.getfixturevalue("stack_env" if request.param == "versitygw" else "minio_env")
    return request.param, s3_client(env)


def error_of(call: Callable[[], object]) -> tuple[int, str]:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    return 200, ""


def test_a_second_conditional_create_is_refused(server):
    _name, s3 = server
    key = f"stack-test/{uuid.uuid4().hex}/claim.json"
    s3.put_object(Bucket="datalake", Key=key, Body=b"first", IfNoneMatch="*")
    assert error_of(lambda: s3.put_object(Bucket="datalake", Key=key, Body=b"second", IfNoneMatch="*")) == (
        412,
        "PreconditionFailed",
    )
    assert s3.get_object(Bucket="datalake", Key=key)["Body"].read() == b"first"


def test_racing_conditional_creates_leave_one_winner(server):
    """Eight writers create the same keys at once: one wins each key, the others are refused (412, or
    409 while the winner's write is still in flight), and the key holds the winner's bytes."""
    _name, s3 = server
    for _ in range(5):
        key = f"stack-test/{uuid.uuid4().hex}/claim.json"
        gate = threading.Barrier(8)

        def create(n: int, key: str = key, gate: threading.Barrier = gate) -> tuple[int, str]:
            gate.wait()
            return error_of(
                lambda: s3.put_object(Bucket="datalake", Key=key, Body=b"%d" % n, IfNoneMatch="*")
            )

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(create, range(8)))
        winners = [n for n, (status, _code) in enumerate(answers) if status == 200]
        assert len(winners) == 1, answers
        assert {a for a in answers if a[0] != 200} <= {
            (412, "PreconditionFailed"),
            (409, "ConditionalRequestConflict"),
        }
        assert s3.get_object(Bucket="datalake", Key=key)["Body"].read() == b"%d" % winners[0]


def test_the_key_after_a_key_is_one_listing_of_one_key(server):
    """StartAfter + MaxKeys=1 answers "the next key after K" in one request, on both servers."""
    _name, s3 = server
    prefix = f"stack-test/{uuid.uuid4().hex}/"
    for name in ("a", "b", "c"):
        s3.put_object(Bucket="datalake", Key=prefix + name, Body=b"")
    page = s3.list_objects_v2(Bucket="datalake", Prefix=prefix, StartAfter=prefix + "a", MaxKeys=1)
    assert [o["Key"] for o in page["Contents"]] == [prefix + "b"] and page["IsTruncated"]
    last = s3.list_objects_v2(Bucket="datalake", Prefix=prefix, StartAfter=prefix + "c", MaxKeys=1)
    assert "Contents" not in last and not last["IsTruncated"]


def test_only_minio_encodes_listings_as_duckdb_asks(server):
    """The difference scripts/lake-sql is built around (docs/native-stack.md): a listing asking for
    `encoding-type=url` gets encoded keys from MinIO and raw ones from versitygw."""
    name, s3 = server
    prefix = f"stack-test/{uuid.uuid4().hex}/"
    s3.put_object(Bucket="datalake", Key=prefix + "log-data+0+1.json", Body=b"")
    page = s3.list_objects_v2(Bucket="datalake", Prefix=prefix, EncodingType="url")
    keys = [o["Key"] for o in page["Contents"]]
    if name == "minio":
        assert page.get("EncodingType") == "url" and keys == [prefix + "log-data%2B0%2B1.json"]
    else:
        assert not page.get("EncodingType") and keys == [prefix + "log-data+0+1.json"]  # versitygw: empty


@pytest.mark.stack
@MINIO
def test_minio_is_the_compose_release_on_loopback_with_its_console(minio_env):
    import urllib.request

    status = stack("status", name="minio").stdout
    assert "S3 minio" in status and "PostgreSQL" in status
    s3_pid = int(re.search(r"^  s3 .* pid (\d+) ", status, re.M).group(1))
    version = subprocess.run(
        [psutil.Process(s3_pid).exe(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert defaults.MINIO_RELEASE in version, version
    console = int(minio_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]) + 1
    with urllib.request.urlopen(f"http://127.0.0.1:{console}/", timeout=10) as page:
        assert page.status == 200 and b"MinIO" in page.read()
    listening = {c.laddr for c in psutil.Process(s3_pid).net_connections("inet") if c.status == "LISTEN"}
    assert {addr.port for addr in listening} >= {console, console - 1}
    assert {addr.ip for addr in listening} <= {"127.0.0.1", "::1"}, listening  # loopback only


@pytest.fixture(scope="module")
def minio_lake(minio_env: dict[str, str], module_processes: Processes) -> dict[str, str]:
    """A topic of MINIO_EVENTS seeded events, landed in MinIO by the writer until idle."""
    topic = create_topic(minio_env["KAFKA_BOOTSTRAP_SERVERS"], 3)
    env = minio_env | {"LOGLAKE_TOPIC": topic}
    for name, command in (
        (
            "producer",
            ["faking_data.py", "--count", str(MINIO_EVENTS), "--rate", "0", "--seed", "1", "--quiet"],
        ),
        ("writer", ["receive_faking_data.py", "--exit-when-idle", "3", "--quiet"]),
    ):
        code, _out, err = module_processes.start(command, env, name).finish(300)
        assert code == 0, f"{command[0]}: {err[-2000:]}"
    return env


@pytest.mark.stack
@MINIO
def test_verify_finds_every_event_once_in_minio(minio_lake, processes):
    code, out, err = processes.start(["-m", "loglake", "verify"], minio_lake, "verify").finish(300)
    assert code == 0, out + err
    assert f"in_lake={MINIO_EVENTS} " in out and "result=OK" in out, out


@pytest.mark.stack
@MINIO
def test_lake_sql_globs_minio(minio_lake, processes):
    """On MinIO scripts/lake-sql lets DuckDB list the objects (a glob), and counts every event."""
    asked = processes.command(
        ["scripts/lake-sql", "--show-view", "SELECT count(*) AS events FROM events"], minio_lake, "lake-sql"
    )
    code, out, err = asked.finish(300)
    assert code == 0, err
    view, header, count, _took = out.splitlines()
    assert "/dt=*/hour=*/*.jsonl*'" in view, view
    assert (header.strip(), count.strip()) == ("events", str(MINIO_EVENTS))


@pytest.mark.stack
@MINIO
def test_postgres_takes_the_printed_uri_and_keeps_its_data_across_a_restart(minio_env):
    import psycopg

    printed = minio_env["PYICEBERG_CATALOG__LOGLAKE__URI"]
    assert printed.startswith("postgresql+psycopg://")  # SQLAlchemy's dialect+driver, as pyiceberg takes it
    uri = printed.replace("postgresql+psycopg://", "postgresql://", 1)  # libpq's own form of it
    table = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(uri, connect_timeout=10) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")
        conn.execute(f"INSERT INTO {table} VALUES (42)")
    stack("kill", "postgres", "--signal", "TERM", name="minio")
    stack("start", "postgres", name="minio")
    with psycopg.connect(uri, connect_timeout=10) as conn:
        assert conn.execute(f"SELECT id FROM {table}").fetchall() == [(42,)]
        assert conn.execute("SELECT current_user").fetchone() == (defaults.POSTGRES_USER,)
