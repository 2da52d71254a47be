"""docker-compose.yml: the properties a new user depends on, and no drift from the native stack.

(The real Compose parser checks the file for every profile in scripts/check-compose, which
scripts/test runs; these tests check what the parser does not: pins, health, order, listeners.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from loglake import defaults

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# Confluent Platform 7.9 ships Apache Kafka 3.9 (Confluent's version table)
CP_TO_KAFKA = {"7.9": "3.9"}


def image_of(name: str) -> tuple[str, str]:
    """(repository, tag) of a service's image, without its digest."""
    repo, _, tag = SERVICES[name]["image"].split("@", 1)[0].rpartition(":")
    return repo, tag


def test_no_version_key_and_every_image_pinned():
    assert "version" not in COMPOSE
    for name, service in SERVICES.items():
        repo, tag = image_of(name)
        assert repo and tag and tag != "latest", (
            f"{name}: image {service['image']} is not pinned to a version"
        )


def test_minio_images_pinned_by_tag_and_digest():
    for name in ("minio", "init-bucket"):
        image = SERVICES[name]["image"]
        assert image.startswith("quay.io/minio/") and re.search(
            r":RELEASE\.[^@]+@sha256:[0-9a-f]{64}$", image
        ), image


def test_every_long_running_service_has_a_healthcheck():
    for name in ("zookeeper", "kafka", "minio", "kafka-2", "kafka-3", "kafka-kraft", "seaweedfs"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_init_runs_after_health_and_apps_after_init():
    assert SERVICES["kafka"]["depends_on"]["zookeeper"]["condition"] == "service_healthy"
    assert SERVICES["init-topic"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert SERVICES["init-bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for app in ("producer", "writer"):
        deps = SERVICES[app]["depends_on"]
        assert deps["init-topic"]["condition"] == "service_completed_successfully"
        assert deps["init-bucket"]["condition"] == "service_completed_successfully"
        assert SERVICES[app]["restart"] == "on-failure"
        assert SERVICES[app]["build"] == "."


def test_init_is_idempotent():
    assert "--if-not-exists" in " ".join(SERVICES["init-topic"]["command"])
    assert "mc mb --ignore-existing" in " ".join(SERVICES["init-bucket"]["command"])


def test_kafka_has_a_listener_for_containers_and_one_for_the_host():
    env = SERVICES["kafka"]["environment"]
    assert "INTERNAL://kafka:29092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_ZOOKEEPER_CONNECT"] == "zookeeper:2181"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert SERVICES["producer"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"


def test_every_network_and_volume_used_is_declared():
    networks = set(COMPOSE["networks"])
    volumes = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        assert set(service.get("networks", [])) <= networks, name
        assert service.get("networks"), f"{name} joins no network"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source in volumes, f"{name}: volume {source} is not declared"


def test_profiles_cluster_kraft_and_alternative_s3():
    profiles = {p for s in SERVICES.values() for p in s.get("profiles", [])}
    assert profiles == {"cluster", "kraft", "seaweedfs", "geo"}
    cluster_init = " ".join(SERVICES["init-cluster"]["command"])
    assert "--replication-factor 3" in cluster_init and "min.insync.replicas=2" in cluster_init
    assert "KAFKA_ZOOKEEPER_CONNECT" not in SERVICES["kafka-kraft"]["environment"]


def test_versions_ports_names_match_the_native_stack():
    repo, tag = image_of("kafka")
    assert repo == "confluentinc/cp-kafka"
    assert CP_TO_KAFKA[".".join(tag.split(".")[:2])] == ".".join(
        defaults.KAFKA_ZOOKEEPER_MODE_VERSION.split(".")[:2]
    )
    assert image_of("kafka-kraft") == ("apache/kafka", defaults.KAFKA_KRAFT_MODE_VERSION)
    assert image_of("zookeeper") == ("zookeeper", defaults.ZOOKEEPER_VERSION)
    published = {
        name: int(SERVICES[name]["ports"][0].split(":")[0])
        for name in ("kafka", "kafka-2", "kafka-3", "minio")
    }
    assert (published["kafka"], published["kafka-2"], published["kafka-3"]) == defaults.KAFKA_PORTS
    assert published["minio"] == defaults.S3_PORT
    init = " ".join(SERVICES["init-topic"]["command"])
    assert f"--topic {defaults.TOPIC} --partitions {defaults.TOPIC_PARTITIONS}" in init
    assert f"--topic {defaults.TOPIC}{defaults.DEAD_LETTER_SUFFIX} " in init
    assert f"lake/{defaults.BUCKET}" in " ".join(SERVICES["init-bucket"]["command"])
    env = SERVICES["writer"]["environment"]
    assert env["LAKE_BUCKET"] == defaults.BUCKET and env["LOGLAKE_TOPIC"] == defaults.TOPIC
    assert env["LOGLAKE_GROUP"] == defaults.CONSUMER_GROUP


def test_app_variables_are_the_ones_the_settings_read():
    settings_text = (REPO / "loglake" / "settings.py").read_text()
    for name in SERVICES["writer"]["environment"]:
        if name.startswith(("KAFKA_", "AWS_", "LAKE_")):
            assert f'"{name}"' in settings_text, f"{name} is not read by loglake/settings.py"


def test_dev_credentials_in_env_file_are_the_documented_defaults():
    values = dict(
        line.split("=", 1)
        for line in (REPO / ".env").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    assert values["LAKE_ACCESS_KEY_ID"] == defaults.S3_ACCESS_KEY_ID
    assert values["LAKE_SECRET_ACCESS_KEY"] == defaults.S3_SECRET_ACCESS_KEY


@pytest.mark.parametrize("field", ["FROM python:3.11-slim", "USER loglake", "COPY requirements.txt"])
def test_dockerfile_is_slim_non_root_with_cached_requirements(field):
    text = (REPO / "Dockerfile").read_text()
    assert field in text
    assert text.index("RUN pip install -r requirements.txt") < text.index("COPY loglake/")


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
    assert SERVICES["kafka-west"]["ports"] == [f"{west_port}:{west_port}"]
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
    assert f"{defaults.GEO_SOURCE}.{defaults.TOPIC}" in mm["healthcheck"]["test"][1]
    for dep, condition in (
        ("init-topic", "service_completed_successfully"),
        ("init-west", "service_completed_successfully"),
    ):
        assert mm["depends_on"][dep]["condition"] == condition
