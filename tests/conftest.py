"""Shared test fixtures: a real PostgreSQL server per session, fresh databases per test."""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from pytest_postgresql.executors import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import URL
from sqlalchemy.orm import Session, sessionmaker

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_REAL = REPO_ROOT.parent / "shared" / "fixtures" / "real"

# The database superuser created by initdb; with trust auth any OS user may use it.
PG_SUPERUSER = "postgres"
# Used only when we run as root and the apt package's `postgres` user does not exist.
FALLBACK_OS_USER = "xborder-pg"
PG_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def in_ci() -> bool:
    """CI must never pass by skipping: a missing prerequisite is a failure there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- binaries


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in PG_SERVER_BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); numeric, so 10 sorts above 9.
    return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name)) or (0,)


def find_pg_bindir() -> Path | None:
    """Server binaries: $PG_BINDIR, then `pg_config --bindir`, then the newest Debian layout."""
    override = os.environ.get("PG_BINDIR")
    if override:
        return Path(override) if _has_server_binaries(Path(override)) else None
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            # libpq-dev alone ships a pg_config whose bindir has no server: check, don't trust.
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_server_binaries(Path(candidate)):
            return Path(candidate)
    return None


_BINDIR_CACHE: list[Path | None] = []


def pg_bindir() -> Path | None:
    if not _BINDIR_CACHE:
        _BINDIR_CACHE.append(find_pg_bindir())
    return _BINDIR_CACHE[0]


NO_SERVER_REASON = (
    "PostgreSQL server binaries not found (looked at $PG_BINDIR, `pg_config --bindir`, "
    "/usr/lib/postgresql/*/bin); install them with `apt-get install postgresql-15` "
    "or run `make sysdeps` as root"
)


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _make_root_dir() -> Path:
    """A private temp dir; when root, under a parent the server's user can traverse."""
    base = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() == 0 and not all(os.stat(p).st_mode & 0o001 for p in (base, *base.parents)):
        base = Path("/tmp")  # $TMPDIR is private to root: the server could not reach it
    return Path(tempfile.mkdtemp(prefix="xborder-pg-", dir=base))


def _ensure_os_user() -> str:
    """PostgreSQL refuses to run as root: pick (or create) an unprivileged user for it."""
    for name in ("postgres", FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_OS_USER,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return FALLBACK_OS_USER


@dataclass
class PgServer:
    """A throwaway PostgreSQL cluster living in one temp dir; stop() removes all of it."""

    bindir: Path
    root: Path = field(default_factory=_make_root_dir)
    port: int = 0
    os_user: str | None = None  # set when we are root and must drop privileges
    host: str = "127.0.0.1"
    user: str = PG_SUPERUSER
    started: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.os_user:
            cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        # cwd: the unprivileged user may not be able to enter the caller's directory.
        return subprocess.run(
            cmd,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        if os.geteuid() == 0:
            self.os_user = _ensure_os_user()
        self.sockdir.mkdir()
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            for path in (self.root, self.sockdir):
                os.chown(path, entry.pw_uid, entry.pw_gid)

        res = self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            PG_SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

        def quote(value: str) -> str:
            return "'" + value.replace("'", "''") + "'"

        # Appending keeps the file owned by the server's user.
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# xborder test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = {quote(str(self.sockdir))}\n"
                # Throwaway data: durability only costs time.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )

        # A port picked as free can be taken before the server binds it: retry a few times.
        for _attempt in range(3):
            self.port = _free_port()
            res = self._run(
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "-s",
                "-o",
                f"-p {self.port}",
                "start",
            )
            if res.returncode == 0:
                self.started = True
                return
            if "already in use" not in self._log_tail():
                break
        raise RuntimeError(
            f"pg_ctl start failed ({res.returncode}): {res.stdout}{res.stderr}\n"
            f"server log:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        # The pid file, not `started`: a start that timed out may still have left a server.
        if self.started or (self.datadir / "postmaster.pid").exists():
            self.started = False
            res = self._run(
                "pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "-s", "stop", timeout=60
            )
            if res.returncode != 0:
                self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)  # SIGQUIT = immediate shutdown, children follow

    def executor(self) -> NoopExecutor:
        return NoopExecutor(
            host=self.host,
            port=self.port,
            user=self.user,
            options="",
            dbname="postgres",
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `postgres` without server binaries: skip locally, fail under CI."""
    if item.get_closest_marker("postgres") is not None and pg_bindir() is None:
        skip_or_fail(NO_SERVER_REASON)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[NoopExecutor]:
    """A real PostgreSQL server for the whole session (started on first use)."""
    bindir = pg_bindir()
    if bindir is None:
        skip_or_fail(NO_SERVER_REASON)
    server = PgServer(bindir=bindir)
    # atexit as a backstop if pytest dies before session teardown.
    atexit.register(server.stop)
    try:
        server.start()
        yield server.executor()
    finally:
        server.stop()
        atexit.unregister(server.stop)


_db_counter = itertools.count(1)


@pytest.fixture
def pg_url(pg_server: NoopExecutor) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database, dropped after the test."""
    dbname = f"xb_test_{next(_db_counter)}_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(
        user=pg_server.user,
        host=pg_server.host,
        port=pg_server.port,
        dbname=dbname,
        maintenance_dbname=pg_server.maintenance_dbname,
        password=pg_server.password,
        connection_timeout=30,
    )
    # The janitor's drop terminates any connection a test left open before dropping.
    with janitor:
        yield URL.create(
            "postgresql+psycopg",
            username=pg_server.user,
            host=pg_server.host,
            port=pg_server.port,
            database=dbname,
        ).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against both store backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/x.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(scope="session")
def fixtures_real() -> Path:
    """Real-world sample data shared beside the repo (../shared/fixtures/real)."""
    if not FIXTURES_REAL.is_dir():
        skip_or_fail(f"real fixtures not found at {FIXTURES_REAL}")
    return FIXTURES_REAL


@pytest.fixture
def store(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated store on `db_url` (SQLite, and PostgreSQL where the test is parametrised so)."""
    from monitor.store.session import open_store

    factory = open_store(db_url)
    yield factory
    factory.kw["bind"].dispose()
