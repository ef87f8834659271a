"""Checks scripts/run and scripts/test make before they start anything, with the settings read
exactly as the app reads them (`.env`, the environment winning):

    python -m service.preflight [--wait SECONDS] CHECK...

    settings   every setting valid (else one line each, exit 2); always checked first
    port       PORT free on BIND_HOST (else how to choose another)
    database   the MySQL/MariaDB server at DB_HOST:DB_PORT answers (the database itself need
               not exist yet: migrate creates it); --wait keeps trying that long

The checks run in the order given and stop at the first that fails. Exit status: 0 fine; 1 the
check failed (the line says why); 2 a bad setting; 3 (database only) nothing listens at
DB_HOST:DB_PORT and that is the address of this machine's own MariaDB, which the caller may
start.
"""

from __future__ import annotations

import argparse
import errno
import shutil
import socket
import subprocess
import sys
import time

import pymysql

from service.config import Settings, load_or_exit
from service.db import connect, error_code, explain

EXIT_FAILED = 1
EXIT_LOCAL_SERVER_DOWN = 3
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LOCAL_SERVER = "/usr/sbin/mariadbd"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_port(settings: Settings) -> int:
    if port_taken(settings.BIND_HOST, settings.PORT):
        spare = next(
            (
                p
                for p in range(settings.PORT + 1, settings.PORT + 50)
                if not port_taken(settings.BIND_HOST, p)
            ),
            None,
        )
        example = f"PORT={spare} scripts/run" if spare else "PORT=<another port> scripts/run"
        say(
            f"port {settings.PORT} on {settings.BIND_HOST} is taken (is another scripts/run or "
            f"server already serving there?); choose another port, e.g. {example}"
        )
        return EXIT_FAILED
    return 0


def port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As gunicorn binds: SO_REUSEADDR, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def local_server_port() -> int | None:
    """The port this machine's own MariaDB is configured for, or None without one."""
    if not shutil.which(LOCAL_SERVER):
        return None
    try:
        out = subprocess.run(
            ["my_print_defaults", "mysqld", "mariadbd", "mariadb", "server"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    ports = [line.split("=", 1)[1] for line in out.split() if line.startswith("--port=")]
    return int(ports[-1]) if ports and ports[-1].isdigit() else 3306


def check_database(settings: Settings, wait: float) -> int:
    deadline = time.monotonic() + wait
    while True:
        try:
            connect(settings, database="").close()
            return 0
        except pymysql.err.MySQLError as exc:
            failure = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    refused = error_code(failure) == 2003 and "refused" in explain(failure, settings)
    local = settings.DB_HOST in LOCAL_HOSTS
    if refused and not wait and local and local_server_port() == settings.DB_PORT:
        return EXIT_LOCAL_SERVER_DOWN
    waited = f" (waited {wait:g} s)" if wait else ""
    say(f"cannot use the database server: {explain(failure, settings)}{waited}")
    if refused:
        say("start it, or point DB_HOST/DB_PORT (in .env or the environment) at a running one")
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.preflight")
    parser.add_argument("checks", nargs="+", choices=["settings", "port", "database"])
    parser.add_argument(
        "--wait", type=float, default=0.0, help="database: keep trying for this many seconds"
    )
    args = parser.parse_args(argv)
    settings = load_or_exit()
    for check in args.checks:
        if check == "port" and (status := check_port(settings)):
            return status
        if check == "database" and (status := check_database(settings, args.wait)):
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
