"""PostgreSQL for the Iceberg catalog (`scripts/stack up --postgres`): one cluster per stack instance.

The server is Debian's (`/usr/lib/postgresql/<major>/bin`), installed with apt-get on first use when
it is missing and we are root (CI is), never its system service: `initdb` makes a cluster in
`.stack/<instance>/postgres/data`, and `postgres` runs it on 127.0.0.1 only (no Unix socket), at
5432 + the instance's port offset, with one database and one development user (loglake/defaults.py).

PostgreSQL refuses to run as root, so as root both run as the system user `postgres`, which Debian's
package creates, and the cluster's folder belongs to it. A checkout that user cannot enter (one under
/root, which only root may enter) gets its cluster under that user's home instead, named after the
instance's folder; `.stack/<instance>/postgres/data-dir` then says where, and `down --wipe` deletes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from loglake import defaults
from loglake.stack.process import StackError

if TYPE_CHECKING:
    from loglake.stack.services import Instance

log = logging.getLogger("loglake.stack")

# Debian's packages; PostgreSQL's own binaries live in a folder per major version.
INSTALL_ROOT = Path("/usr/lib/postgresql")
APT_PACKAGES = ("postgresql",)
# Debian's postgresql-common would create and start a cluster `main` on 5432 (the default instance's
# port) while installing; this drop-in (read by pg_createcluster) tells it not to.
NO_MAIN_CLUSTER = Path("/etc/postgresql-common/createcluster.d/loglake-no-main-cluster.conf")
# SIGTERM ("smart" shutdown) waits until every client has disconnected; SIGINT ("fast") ends them.
STOP_SIGNAL = signal.SIGINT
SYSTEM_USER = "postgres"


def uri(inst: Instance, driver: str = "postgresql+psycopg") -> str:
    """SQLAlchemy's URL of the instance's catalog database (pyiceberg's SQL catalog takes it)."""
    user, password = defaults.POSTGRES_USER, defaults.POSTGRES_PASSWORD
    return f"{driver}://{user}:{password}@127.0.0.1:{inst.cfg.postgres_port}/{defaults.POSTGRES_DATABASE}"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries; installs Debian's package first if there is none."""
    found = _installed()
    if found is None:
        install()
        found = _installed()
    if found is None:
        raise StackError(
            f"apt-get installed {' '.join(APT_PACKAGES)}, but {INSTALL_ROOT}/*/bin/initdb is missing"
        )
    return found


def _installed() -> Path | None:
    majors = [p for p in INSTALL_ROOT.glob("*/bin/initdb") if re.fullmatch(r"\d+", p.parent.parent.name)]
    if not majors:
        return None
    return max(majors, key=lambda p: int(p.parent.parent.name)).parent


def install() -> None:
    """Debian's `postgresql` package, without recommended extras, non-interactively (root only)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError(
            "PostgreSQL is needed for --postgres and is not installed; install Debian's package "
            "(sudo apt-get install postgresql) and run this again"
        )
    log.info(
        "installing Debian's %s package with apt-get (first use on this machine)", " ".join(APT_PACKAGES)
    )
    NO_MAIN_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
    if not NO_MAIN_CLUSTER.exists():
        NO_MAIN_CLUSTER.write_text("# written by loglake's scripts/stack: no system cluster on 5432\n"
                                   "create_main_cluster = false\n")  # fmt: skip
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:  # a machine whose package lists were never fetched: fetch them once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, check=False, env=env)
        result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        raise StackError(f"apt-get could not install {' '.join(APT_PACKAGES)}: {' '.join(tail)}")


def run_as() -> str | None:
    """The user the server runs as: `postgres` when we are root (PostgreSQL refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise StackError(
            f"PostgreSQL cannot run as root and there is no system user {SYSTEM_USER!r}; "
            "reinstall Debian's postgresql package"
        ) from None
    return SYSTEM_USER


def cluster_dir(inst: Instance) -> Path:
    """Where the instance's cluster lives: `.stack/<instance>/postgres/data`, or, when the server's user
    cannot enter that folder, a folder of its own home (recorded in `postgres/data-dir`)."""
    sdir = inst.service_dir("postgres")
    pointer = sdir / "data-dir"
    if pointer.exists():
        return Path(pointer.read_text().strip())
    user = run_as()
    if user is None or _can_enter(user, inst.dir):
        return sdir / "data"
    digest = hashlib.sha256(str(inst.dir.resolve()).encode()).hexdigest()[:12]
    return Path(pwd.getpwnam(user).pw_dir) / "loglake-stacks" / f"{inst.cfg.name}-{digest}"


def _can_enter(user: str, folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["test", "-x", str(folder)], user=user, cwd="/", check=False).returncode == 0


def wipe(inst: Instance) -> None:
    """Delete a cluster that lives outside the instance's folder (the folder itself goes with `down --wipe`)."""
    pointer = inst.service_dir("postgres") / "data-dir"
    if pointer.exists():
        shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)


def command(inst: Instance) -> list[str]:
    """The server's command line; the cluster is made first if the instance has none yet."""
    binaries = bin_dir()
    data = cluster_dir(inst)
    if not (data / "PG_VERSION").exists():
        init_cluster(inst, binaries)
    have, want = (data / "PG_VERSION").read_text().strip(), binaries.parent.name
    if have != want:
        raise StackError(
            f"the catalog's PostgreSQL data is version {have}, the installed server is {want}; delete it "
            f"first: scripts/stack --name {inst.cfg.name} down --wipe"
        )
    return [
        str(binaries / "postgres"),
        "-D",
        str(data),
        "-c",
        f"port={inst.cfg.postgres_port}",
        # names the instance's folder on the command line, where `scripts/stack` finds its services
        "-c",
        f"cluster_name=loglake {inst.service_dir('postgres')}",
    ]


def init_cluster(inst: Instance, binaries: Path) -> None:
    """initdb, loopback-only settings, then the development user and its database (single-user mode:
    no server is listening yet, and the superuser never gets a password)."""
    sdir = inst.service_dir("postgres")
    data = cluster_dir(inst)
    shutil.rmtree(data, ignore_errors=True)
    sdir.mkdir(parents=True, exist_ok=True)
    user = run_as()
    if user:
        data.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(data.parent, user, user)
    if data.parent != sdir:
        (sdir / "data-dir").write_text(f"{data}\n")
        log.info("the system user %s cannot enter %s: the cluster goes to %s", user, inst.dir, data)
    env = dict(os.environ, LC_ALL="C")
    _run(
        [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            SYSTEM_USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "--no-sync",  # a development cluster: its files reach the disk with the first checkpoint
        ],
        user,
        env,
        "initdb",
    )
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# loglake's scripts/stack: loopback TCP only, no Unix socket (the port comes on the command line)\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
        )
    password = defaults.POSTGRES_PASSWORD.replace("'", "''")
    sql = (
        f"CREATE ROLE {defaults.POSTGRES_USER} LOGIN PASSWORD '{password}'\n"
        f"CREATE DATABASE {defaults.POSTGRES_DATABASE} OWNER {defaults.POSTGRES_USER}\n"
    )
    _run(
        [str(binaries / "postgres"), "--single", "-D", str(data), "template1"],
        user,
        env,
        "creating the user",
        sql,
    )
    log.info("created PostgreSQL %s cluster in %s", binaries.parent.name, data)


def _run(argv: list[str], user: str | None, env: dict[str, str], what: str, stdin: str | None = None) -> None:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, check=False, env=env, user=user, cwd="/"
    )
    if result.returncode != 0 or "ERROR:" in result.stdout + result.stderr:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise StackError(f"PostgreSQL {what} failed: {' '.join(detail)}")


def healthy(inst: Instance) -> bool:
    """pg_isready: the server accepts connections on its port."""
    result = subprocess.run(
        [
            str(bin_dir() / "pg_isready"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(inst.cfg.postgres_port),
            "-d",
            defaults.POSTGRES_DATABASE,
            "-U",
            defaults.POSTGRES_USER,
            "-t",
            "2",
        ],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0
