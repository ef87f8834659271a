# Shared shell helpers for scripts/run, scripts/test and scripts/bench (sourced, not executed).
# Settings are never read here: `python -m service.preflight` reads them exactly as the app does
# (.env, the environment winning) and says in one line what is wrong.

# Run the given checks of `python -m service.preflight` (settings, port, database) in one go.
# When the database server is down, start this machine's own MariaDB only if DB_HOST:DB_PORT is
# the address it serves (local host, its configured port); anything else fails at once with the
# cause.
preflight() {
  local status=0
  .venv/bin/python -m service.preflight "$@" || status=$?
  if [ "$status" -ne 3 ]; then
    return "$status"
  fi
  echo "the local MariaDB is not running; starting it (/usr/sbin/mariadbd)" >&2
  if ! start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; then
    echo "could not start /usr/sbin/mariadbd (start it yourself, e.g. service mariadb start)" >&2
    return 1
  fi
  .venv/bin/python -m service.preflight database --wait 30
}

# Check that the MySQL/MariaDB server of DB_HOST:DB_PORT answers (see preflight).
ensure_mariadb() {
  preflight database
}

# Create .venv if needed and install the given requirements file (only when it changed), saying
# what it installs.
ensure_venv() {
  local requirements=$1
  if [ ! -x .venv/bin/python ]; then
    echo "creating the virtual environment .venv (python3 -m venv)" >&2
    python3 -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$requirements")"
  if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    echo "installing the Python packages of $requirements into .venv (pip)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
  fi
}
