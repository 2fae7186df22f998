"""A throwaway PostgreSQL server for tests: initdb in a temp folder, pg_ctl on a free loopback port.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user the Debian package
creates (through `runuser`). Nothing listens beyond 127.0.0.1, password authentication is required over
TCP, and the cluster is stopped and deleted on exit.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys_platform_tests.webserver_process import free_loopback_port

MISSING_SERVER = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: "
    "install Debian's `postgresql` package (apt-get install postgresql) to run the production-instance tests"
)
SERVER_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why (tests skip with it)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads its connection from."""
        return {
            "DAGSTER_POSTGRES_HOSTNAME": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": self.db_name,
        }

    def connect(self, db_name: str | None = None):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=db_name or self.db_name, connect_timeout=10)


def server_bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise PostgresUnavailable(MISSING_SERVER)


def _as_server_user() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as a user the server accepts."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError as error:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(Debian's postgresql package creates it)") from error
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root and `runuser` (util-linux) is missing")
    return [runuser, "-u", SERVER_USER, "--"]


def _run(command: list[str], timeout: float = 120.0) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def running_postgres(db_name: str = "dagster", user: str = "dagster") -> Iterator[PostgresServer]:
    """Start a private PostgreSQL cluster on 127.0.0.1 with database `db_name` owned by `user`."""
    bin_dir = server_bin_dir()
    prefix = _as_server_user()
    # Not under pytest's tmp_path: its parents are private to root, and the server user must reach the folder.
    root = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    data_dir, log_file, password_file = root / "data", root / "server.log", root / "password"
    password = os.urandom(12).hex()
    password_file.write_text(password + "\n")
    if prefix:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chown(password_file, entry.pw_uid, entry.pw_gid)
    password_file.chmod(0o600)
    started = False
    try:
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", user, f"--pwfile={password_file}",
              "--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8", "--no-sync"])
        password_file.unlink()
        for attempt in range(3):
            port = free_loopback_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='{root}' "
                       "-c fsync=off -c max_connections=100")
            try:
                _run([*prefix, str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data_dir),
                      "-l", str(log_file), "-o", options])
                started = True
                break
            except RuntimeError:
                # Another process may take the probed port before the server binds it.
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                if attempt == 2 or "could not bind" not in log:
                    raise RuntimeError(f"PostgreSQL did not start:\n{log[-3000:]}") from None
        server = PostgresServer(host="127.0.0.1", port=port, user=user, password=password, db_name=db_name)
        with contextlib.closing(server.connect("postgres")) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{db_name}" OWNER "{user}"')
        yield server
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([*prefix, str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-w"])
        shutil.rmtree(root, ignore_errors=True)
