"""docker-compose.yml: what a new user depends on, per profile, and no drift from the native stack.

scripts/check-compose runs the real Compose parser on every profile (scripts/test runs it first);
these tests check what the parser cannot: which topics the init jobs create and with how many
replicas, where Kafka writes, which ports are exposed, how much disk a forgotten stack can fill.
The init job's shell script is run here for real, with stand-ins for Kafka's command-line tools.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from loglake import defaults, flags, settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
PROFILES = ("default", *sorted({p for s in SERVICES.values() for p in s.get("profiles", [])}))
# Confluent Platform 7.9 ships Apache Kafka 3.9 (Confluent's version table)
CP_TO_KAFKA = {"7.9": "3.9"}
INFRA = (
    "zookeeper",
    "kafka",
    "kafka-2",
    "kafka-3",
    "kafka-kraft",
    "minio",
    "versitygw",
    "zookeeper-west",
    "kafka-west",
    "mirror-maker",
    "postgres",
)
GIB = 1024**3
# The oldest Docker Compose this file needs, as README's Prerequisites state it (docs/compose.md says why)
MINIMUM_COMPOSE = "2.23.1"
CHECK_COMPOSE = (REPO / "scripts" / "check-compose").read_text()


def services_of(profile: str) -> dict[str, dict]:
    """The services `docker compose [--profile P] up` starts."""
    return {
        name: s for name, s in SERVICES.items() if not s.get("profiles") or profile in s.get("profiles", [])
    }


def brokers_of(profile: str) -> dict[str, dict]:
    return {
        name: s
        for name, s in services_of(profile).items()
        if "KAFKA_ADVERTISED_LISTENERS" in s.get("environment", {}) and not name.startswith("init")
    }


def env_default(value) -> str:
    """The value of `${VAR:-default}` when VAR is not set, or the value itself."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-([^}]*)\}", str(value))
    return match.group(1) if match else str(value)


def image_of(name: str) -> tuple[str, str]:
    """(repository, tag) of a service's image, without its digest."""
    repo, _, tag = SERVICES[name]["image"].split("@", 1)[0].rpartition(":")
    return repo, tag


# ------------------------------------------------------------------------------ the topic init job


def write_tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def run_init_topic(tmp_path: Path, answering: int, existing_rf: int | None = None):
    """Run init-topic's script with `answering` extra brokers reachable; return (result, calls)."""
    script = SERVICES["init-topic"]["command"][0].replace("$$", "$")
    assert 'others="kafka-2:29092 kafka-3:29092"' in script, "init-topic no longer probes kafka-2/kafka-3"
    listeners, others = [], []
    for i in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        others.append(f"127.0.0.1:{sock.getsockname()[1]}")
        if i < answering:
            sock.listen()
            listeners.append(sock)
        else:
            sock.close()  # a port nobody listens on: this broker does not exist
    script = script.replace('others="kafka-2:29092 kafka-3:29092"', f'others="{" ".join(others)}"')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    write_tool(
        bin_dir,
        "kafka-broker-api-versions",
        f"for i in $(seq {1 + answering}); do echo 'b (id: '$i' rack: null) -> ('; done\n",
    )
    # kafka-topics: record each call; --describe answers with the RF it was created with (or an older one)
    write_tool(
        bin_dir,
        "kafka-topics",
        f'echo "$*" >> {calls}\n'
        'if [[ " $* " == *" --describe "* ]]; then\n'
        '  topic=$(sed -n "s/.*--topic \\([^ ]*\\).*/\\1/p" <<< "$*")\n'
        f"  rf={existing_rf or ''}\n"
        f'  [ -n "$rf" ] || rf=$(grep -- "--create .*--topic $topic " {calls} | sed -n "s/.*--replication-factor \\([0-9]*\\).*/\\1/p")\n'
        '  printf "Topic: %s\\tTopicId: x\\tPartitionCount: 3\\tReplicationFactor: %s\\tConfigs:\\n" "$topic" "$rf"\n'
        "fi\n",
    )
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for sock in listeners:
            sock.close()
    created = {}
    for line in calls.read_text().splitlines() if calls.exists() else []:
        if "--create" in line:
            words = shlex.split(line)
            topic = words[words.index("--topic") + 1]
            created[topic] = {
                "rf": int(words[words.index("--replication-factor") + 1]),
                "partitions": int(words[words.index("--partitions") + 1]),
                "configs": dict(w.split("=", 1) for i, w in enumerate(words) if words[i - 1] == "--config"),
            }
    return result, created


@pytest.mark.parametrize("profile", ["default", "cluster"])
def test_init_topic_creates_every_topic_with_one_replica_per_broker(tmp_path, profile):
    brokers = len(brokers_of(profile))
    assert brokers == (3 if profile == "cluster" else 1)
    result, created = run_init_topic(tmp_path, answering=brokers - 1)
    assert result.returncode == 0, result.stderr
    topic, dlq = defaults.TOPIC, defaults.TOPIC + defaults.DEAD_LETTER_SUFFIX
    assert set(created) == {"__consumer_offsets", topic, dlq}
    for name in ("__consumer_offsets", topic, dlq):
        assert created[name]["rf"] == brokers, f"{profile}: {name} has RF {created[name]['rf']}"
    for name in (topic, dlq):
        assert created[name]["partitions"] == defaults.TOPIC_PARTITIONS
        assert created[name]["configs"]["min.insync.replicas"] == ("2" if brokers == 3 else "1")
    assert created["__consumer_offsets"]["configs"]["cleanup.policy"] == "compact"
    offsets_partitions = min(
        int(b["environment"]["KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS"]) for b in brokers_of(profile).values()
    )
    assert created["__consumer_offsets"]["partitions"] == offsets_partitions


def test_init_topic_refuses_topics_left_by_another_profile(tmp_path):
    result, _ = run_init_topic(tmp_path, answering=2, existing_rf=1)
    assert result.returncode == 1
    assert "docker compose --profile '*' down -v" in result.stderr


def test_init_topic_waits_for_every_broker_of_the_cluster_profile():
    deps = SERVICES["init-topic"]["depends_on"]
    for broker in brokers_of("cluster"):
        assert deps[broker]["condition"] == "service_healthy", broker
        if broker not in brokers_of("default"):
            assert deps[broker]["required"] is False, f"{broker} would be needed without the profile"
    script = SERVICES["init-topic"]["command"][0]
    probed = re.search(r'others="([^"]*)"', script).group(1).split()
    internal = [
        SERVICES[b]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split("INTERNAL://")[1].split(",")[0]
        for b in brokers_of("cluster")
        if b not in brokers_of("default")
    ]
    assert probed == internal


def test_kraft_profile_creates_its_topics_on_its_own_broker():
    init = SERVICES["init-kraft"]
    assert init["profiles"] == ["kraft"]
    assert init["depends_on"]["kafka-kraft"]["condition"] == "service_healthy"
    script = init["command"][0]
    assert "--bootstrap-server kafka-kraft:29092" in script
    assert re.search(r"for topic in log-data log-data\.dlq; do", script)
    brokers = [b for b in brokers_of("kraft") if "KAFKA_PROCESS_ROLES" in SERVICES[b]["environment"]]
    assert brokers == ["kafka-kraft"]
    assert "--replication-factor 1" in script
    assert SERVICES["kafka-kraft"]["environment"]["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


# ------------------------------------------------------------------------------- brokers and disk


@pytest.mark.parametrize("profile", PROFILES)
def test_kafka_writes_inside_its_mounted_volume(profile):
    for name, broker in brokers_of(profile).items():
        log_dirs = broker["environment"].get("KAFKA_LOG_DIRS")
        assert log_dirs, f"{name}: no KAFKA_LOG_DIRS, the image's default is outside the volume"
        mounts = [m.split(":", 1)[1] for m in broker["volumes"]]
        assert any(log_dirs == m or log_dirs.startswith(m.rstrip("/") + "/") for m in mounts), (
            f"{name}: KAFKA_LOG_DIRS={log_dirs} is not inside a mounted volume {mounts}"
        )


@pytest.mark.parametrize("profile", PROFILES)
def test_retention_by_time_and_size_bounds_every_broker(profile):
    for name, broker in brokers_of(profile).items():
        env = broker["environment"]
        hours, per_partition = int(env["KAFKA_LOG_RETENTION_HOURS"]), int(env["KAFKA_LOG_RETENTION_BYTES"])
        segment = int(env["KAFKA_LOG_SEGMENT_BYTES"])
        assert 0 < hours <= 168, name
        # only closed segments are deleted: a segment must be small next to the limit, and roll in time
        assert segment <= per_partition / 2, name
        assert int(env["KAFKA_LOG_ROLL_HOURS"]) <= hours, name
        worst = 2 * defaults.TOPIC_PARTITIONS * (per_partition + segment)  # log-data and its .dlq
        assert worst < 3 * GIB, f"{name}: its topics may hold {worst / GIB:.1f} GiB"


def test_zookeeper_session_expires_within_seconds():
    for name, broker in brokers_of("cluster").items():
        assert int(broker["environment"]["KAFKA_ZOOKEEPER_SESSION_TIMEOUT_MS"]) <= 6000, name


def test_the_demo_producer_stops_by_itself_and_stays_small():
    env = SERVICES["producer"]["environment"]
    rate, duration = int(env_default(env["LOGLAKE_RATE"])), int(env_default(env["LOGLAKE_DURATION"]))
    assert 0 < duration <= 4 * 3600
    assert rate * duration * 800 < 0.5 * GIB  # ~712 bytes an event, plus record overhead
    assert SERVICES["producer"]["restart"].startswith("on-failure")  # a clean exit stays stopped


def test_the_demo_writer_lands_a_first_object_within_a_minute():
    """The tutorial shows an object within a minute: the demo's batch age (plus the writer's start and
    its group join, a few seconds) is under 60 s, shorter than the writer's own default, which the
    compose file leaves alone; at the demo rate the objects stay few enough to list."""
    env = SERVICES["writer"]["environment"]
    batch_age = int(env_default(env["LOGLAKE_BATCH_AGE"]))
    assert batch_age <= 45, f"the first object lands {batch_age} s after the first record, and more"
    assert batch_age < settings.WriterSettings.batch_age, "the demo should cut sooner than the default"
    partitions = defaults.TOPIC_PARTITIONS
    per_hour = partitions * (3600 / batch_age) + partitions  # + a cut at each hour boundary
    assert per_hour <= 400, f"{per_hour:.0f} objects an hour at the demo rate"
    assert "--batch-age" not in " ".join(SERVICES["writer"]["command"])


# ------------------------------------------------------------------------ exposure and operations


@pytest.mark.parametrize("profile", PROFILES)
def test_every_published_port_is_on_loopback(profile):
    for name, service in services_of(profile).items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_restart_policies():
    for name in INFRA:
        assert SERVICES[name]["restart"] == "unless-stopped", name
    for name in ("producer", "writer"):
        assert re.fullmatch(r"on-failure:\d+", SERVICES[name]["restart"]), name
    for name in ("init-topic", "init-bucket", "init-kraft"):
        assert SERVICES[name]["restart"] == "no", name


def test_healthchecks_are_cheap_and_everywhere():
    for name in INFRA:
        test = " ".join(SERVICES[name]["healthcheck"]["test"])
        # a Kafka tool (kafka-topics ...) as a command; a host name such as kafka-west is fine
        assert not re.search(r"(?:^|[\s;&|(])kafka-[a-z-]+\s|zkServer\.sh|java", test), (
            f"{name}: a JVM per healthcheck"
        )
        assert SERVICES[name]["healthcheck"]["interval"] in ("5s", "10s")


def test_one_service_builds_the_app_image_and_the_other_only_names_it():
    """Two services with `build:` and one tag make Compose build twice in parallel, and the second
    export of the tag can fail; the writer names the image the producer builds and never pulls it
    (Compose builds every image before it creates a container). scripts/check-compose checks the same
    on the parser's resolved model."""
    builders = [name for name, s in SERVICES.items() if "build" in s]
    assert builders == ["producer"]
    producer, writer = SERVICES["producer"], SERVICES["writer"]
    assert producer["build"] == "." and producer["pull_policy"] == "build"
    assert writer["image"] == producer["image"]
    assert writer["pull_policy"] == "never"


def test_apps_start_after_the_init_jobs_of_their_profile():
    for app in ("producer", "writer"):
        deps = SERVICES[app]["depends_on"]
        assert deps["init-topic"]["condition"] == "service_completed_successfully"
        assert deps["init-bucket"]["condition"] == "service_completed_successfully"
        # the kraft profile's topics: waited for when the profile is on, ignored when it is off
        assert deps["init-kraft"] == {"condition": "service_completed_successfully", "required": False}
    assert SERVICES["kafka"]["depends_on"]["zookeeper"]["condition"] == "service_healthy"
    assert SERVICES["init-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing" in " ".join(SERVICES["init-bucket"]["command"])


def test_every_network_and_volume_used_is_declared():
    networks = set(COMPOSE["networks"])
    volumes = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        assert service.get("networks"), f"{name} joins no network"
        assert set(service["networks"]) <= networks, name
        for mount in service.get("volumes", []):
            assert mount.split(":", 1)[0] in volumes, f"{name}: volume {mount} is not declared"


def test_kafka_has_a_listener_for_containers_and_one_for_the_host():
    env = SERVICES["kafka"]["environment"]
    assert "INTERNAL://kafka:29092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert SERVICES["producer"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"


# -------------------------------------------------------------------------- images and the lake


def test_every_image_pinned_and_third_party_registries_by_digest():
    assert "version" not in COMPOSE
    for name, service in SERVICES.items():
        if "image" not in service:
            continue
        repo, tag = image_of(name)
        assert repo and tag and tag != "latest", f"{name}: {service['image']} is not pinned"
        if repo.startswith(("quay.io/", "ghcr.io/")):
            assert re.search(r"@sha256:[0-9a-f]{64}$", service["image"]), f"{name}: no digest"


def test_the_writer_can_use_the_second_lake_through_a_variable():
    assert SERVICES["writer"]["environment"]["AWS_ENDPOINT_URL"] == "${LAKE_ENDPOINT_URL:-http://minio:9000}"
    store = SERVICES["versitygw"]
    assert store["profiles"] == ["versitygw"]
    assert "7070" in store["command"][store["command"].index("--port") + 1]
    env = store["environment"]
    assert env["ROOT_ACCESS_KEY_ID"].startswith("${LAKE_ACCESS_KEY_ID")
    assert env["ROOT_SECRET_ACCESS_KEY"].startswith("${LAKE_SECRET_ACCESS_KEY")


def test_versions_ports_names_match_the_native_stack():
    repo, tag = image_of("kafka")
    assert repo == "confluentinc/cp-kafka"
    minor = ".".join(defaults.KAFKA_ZOOKEEPER_MODE_VERSION.split(".")[:2])
    assert CP_TO_KAFKA[".".join(tag.split(".")[:2])] == minor
    assert image_of("kafka-kraft") == ("apache/kafka", defaults.KAFKA_KRAFT_MODE_VERSION)
    # the official image has 3.9.6; Maven Central does not serve all of 3.9.6's jars, so the
    # native stack stays on an earlier 3.9 patch (docs/compose.md says so)
    zk_repo, zk_tag = image_of("zookeeper")
    assert zk_repo == "zookeeper" and zk_tag.split(".")[:2] == defaults.ZOOKEEPER_VERSION.split(".")[:2]
    published = {
        name: int(SERVICES[name]["ports"][0].split(":")[1])
        for name in ("kafka", "kafka-2", "kafka-3", "minio")
    }
    assert (published["kafka"], published["kafka-2"], published["kafka-3"]) == defaults.KAFKA_PORTS
    assert published["minio"] == defaults.S3_PORT
    assert f"lake/{defaults.BUCKET}" in " ".join(SERVICES["init-bucket"]["command"])
    env = SERVICES["writer"]["environment"]
    assert env["LAKE_BUCKET"] == defaults.BUCKET and env["LOGLAKE_TOPIC"] == defaults.TOPIC
    assert env["LOGLAKE_GROUP"] == defaults.CONSUMER_GROUP


def test_app_variables_are_ones_the_scripts_read():
    """Every variable compose gives the apps is one a command of loglake reads (its settings declare
    them, loglake/settings.py); LOGLAKE_* ones must be read by that service's own command."""
    read = {s.opt.env_name for cls in settings.COMMANDS.values() for s in flags.settings_of(cls)}
    own = {"producer": settings.ProducerSettings, "writer": settings.WriterSettings}
    for app, cls in own.items():
        mine = {s.opt.env_name for s in flags.settings_of(cls)}
        for name in SERVICES[app]["environment"]:
            assert name in read, f"{app}: {name} is read by no loglake command"
            assert not name.startswith("LOGLAKE_") or name in mine, f"{app}: its command reads no {name}"


def env_file() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (REPO / ".env").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )


def test_dev_credentials_in_env_file_are_the_documented_defaults():
    values = env_file()
    assert values["LAKE_ACCESS_KEY_ID"] == defaults.S3_ACCESS_KEY_ID
    assert values["LAKE_SECRET_ACCESS_KEY"] == defaults.S3_SECRET_ACCESS_KEY
    # the catalog database's: the URI docs/compose.md gives the writer is made of them
    uri = (
        f"postgresql+psycopg://{values['CATALOG_DB_USER']}:{values['CATALOG_DB_PASSWORD']}"
        f"@postgres:5432/{values['CATALOG_DB_NAME']}"
    )
    assert f"PYICEBERG_CATALOG__LOGLAKE__URI={uri}" in (REPO / "docs" / "compose.md").read_text()
    # the same database and credentials as the native stack's PostgreSQL (loglake/defaults.py)
    assert (values["CATALOG_DB_USER"], values["CATALOG_DB_PASSWORD"], values["CATALOG_DB_NAME"]) == (
        defaults.POSTGRES_USER,
        defaults.POSTGRES_PASSWORD,
        defaults.POSTGRES_DATABASE,
    )


def test_iceberg_profile_runs_the_catalog_database_and_nothing_needs_it_yet():
    pg = SERVICES["postgres"]
    assert pg["profiles"] == ["iceberg"]
    repo, tag = image_of("postgres")
    assert repo == "postgres" and re.fullmatch(r"\d+\.\d+", tag), "the official image, a patch release"
    assert re.search(r"@sha256:[0-9a-f]{64}$", pg["image"]), "pinned by digest"
    assert pg["ports"] == ["127.0.0.1:5432:5432"]
    assert pg["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    # ready over TCP: the image's first-start server listens on its socket only, and is not the real one
    assert "pg_isready -h 127.0.0.1" in " ".join(pg["healthcheck"]["test"])
    values = env_file()
    for variable, source in (
        ("POSTGRES_USER", "CATALOG_DB_USER"),
        ("POSTGRES_PASSWORD", "CATALOG_DB_PASSWORD"),
        ("POSTGRES_DB", "CATALOG_DB_NAME"),
    ):
        assert pg["environment"][variable] == f"${{{source}:?set it in .env}}"
        assert values[source]
    for name, service in SERVICES.items():
        assert "postgres" not in service.get("depends_on", {}), f"{name} waits for the catalog"


# ------------------------------------------------------------------------------ the app image

DOCKERFILE = (REPO / "Dockerfile").read_text()
LOCK = REPO / "requirements-lock.txt"


def locked() -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} of requirements-lock.txt (pip-compile --generate-hashes)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            entries[name] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def test_the_image_base_is_pinned_by_digest():
    [base] = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.M)
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base), f"FROM {base} floats"


def test_every_requirement_is_in_the_lock_with_its_hashes():
    entries = locked()
    pins = [
        line.split("#")[0].strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert len(pins) >= 5
    for pin in pins:
        name, version = pin.split("==")
        name = re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()  # a package's extras are not its name
        assert name in entries, f"{name} is not in requirements-lock.txt: refresh it (docs/development.md)"
        assert entries[name][0] == version, (
            f"{name}: {version} in requirements.txt, {entries[name][0]} locked"
        )
    for name, (version, hashes) in entries.items():
        assert hashes, f"{name}=={version} has no hash"
    # transitive dependencies are locked as well (boto3 needs botocore)
    assert "botocore" in entries


def test_the_image_installs_only_the_hash_locked_file():
    assert "COPY requirements-lock.txt ." in DOCKERFILE
    [install] = re.findall(r"^RUN pip install .*$", DOCKERFILE, flags=re.M)
    assert "--require-hashes" in install and "-r requirements-lock.txt" in install
    assert "requirements.txt" not in install.replace("requirements-lock.txt", "")
    assert DOCKERFILE.index(install) < DOCKERFILE.index("COPY loglake/")  # a layer of its own, cached
    assert "USER loglake" in DOCKERFILE
    assert "requirements-lock.txt" not in (REPO / ".dockerignore").read_text()


# --------------------------------------------------------------------- Compose versions and checks


def test_the_stated_minimum_compose_is_the_one_checked():
    """README states the minimum once; docs/compose.md explains it and links there; the parser of
    that release line runs in scripts/check-compose beside a recent one."""
    readme = (REPO / "README.md").read_text()
    stated = re.findall(r"Compose v(\d+\.\d+(?:\.\d+)?) or newer", readme)
    assert stated == [MINIMUM_COMPOSE], stated
    compose_md = (REPO / "docs" / "compose.md").read_text()
    assert not re.search(r"Compose v?\d+\.\d+(?:\.\d+)? or newer", compose_md)
    assert "../README.md#prerequisites" in compose_md
    oldest = re.search(r'^oldest="v([\d.]+)"', CHECK_COMPOSE, flags=re.M).group(1)
    newest = re.search(r'^newest="v([\d.]+)"', CHECK_COMPOSE, flags=re.M).group(1)
    version = lambda text: tuple(int(x) for x in text.split("."))  # noqa: E731
    assert version(oldest)[:2] == version(MINIMUM_COMPOSE)[:2] and version(oldest) >= version(MINIMUM_COMPOSE)
    assert version(newest) > version(oldest)
    assert 'versions=("$oldest" "$newest")' in CHECK_COMPOSE


def test_check_compose_covers_every_profile_and_all_at_once():
    assert {"cluster", "kraft", "versitygw", "geo", "iceberg"} <= set(PROFILES)
    assert 'for profile in "" $profiles; do' in CHECK_COMPOSE
    assert "config --profiles" in CHECK_COMPOSE
    assert "--profile '*' config --services" in CHECK_COMPOSE


# --- profile geo: region west and MirrorMaker 2, the same as the native `scripts/stack mirror` ---


def test_geo_profile_is_a_second_cluster_and_a_mirror_maker_like_the_native_ones():
    from loglake.stack.mirror import ClusterRef, mm2_properties

    geo = {name for name, s in SERVICES.items() if "geo" in s.get("profiles", [])}
    assert geo == {"zookeeper-west", "kafka-west", "init-west", "mirror-maker"}
    for name in ("kafka-west", "init-west", "mirror-maker"):
        assert SERVICES[name]["image"] == SERVICES["kafka"]["image"], name
    assert SERVICES["zookeeper-west"]["image"] == SERVICES["zookeeper"]["image"]
    for name in ("zookeeper-west", "kafka-west", "mirror-maker"):
        assert SERVICES[name]["healthcheck"]["test"], name
    # west's broker: the host port of `scripts/stack --name west up --port-offset 100`
    west_port = defaults.KAFKA_PORTS[0] + defaults.GEO_WEST_PORT_OFFSET
    env = SERVICES["kafka-west"]["environment"]
    assert SERVICES["kafka-west"]["ports"] == [f"127.0.0.1:{west_port}:{west_port}"]
    assert f"EXTERNAL://localhost:{west_port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "INTERNAL://kafka-west:29092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_ZOOKEEPER_CONNECT"] == "zookeeper-west:2181"
    init = " ".join(SERVICES["init-west"]["command"])
    assert "kafka-west:29092" in init and "--if-not-exists" in init
    assert f"--topic {defaults.TOPIC} --partitions {defaults.TOPIC_PARTITIONS}" in init
    assert f"--topic {defaults.TOPIC}{defaults.DEAD_LETTER_SUFFIX} " in init
    # MirrorMaker: Kafka's own driver, fed exactly the configuration the native mirror writes
    mm = SERVICES["mirror-maker"]
    assert mm["entrypoint"] == ["/usr/bin/connect-mirror-maker"]
    [mounted] = mm["configs"]
    assert mm["command"] == [mounted["target"]] and mounted["source"] == "mm2"
    assert COMPOSE["configs"]["mm2"]["content"] == mm2_properties(
        ClusterRef(defaults.GEO_SOURCE, "kafka:29092", 1),
        ClusterRef(defaults.GEO_TARGET, "kafka-west:29092", 1),
    )
    assert "mirror.MirrorMaker" in " ".join(mm["healthcheck"]["test"])
    for dep, condition in (
        ("init-topic", "service_completed_successfully"),
        ("init-west", "service_completed_successfully"),
    ):
        assert mm["depends_on"][dep]["condition"] == condition
