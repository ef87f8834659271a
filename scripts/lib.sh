# Shared shell helpers for scripts/run and scripts/test (sourced, not executed).

# Start MariaDB if it does not answer, then wait until it does (at most 60 s).
ensure_mariadb() {
  local host=${DB_HOST:-127.0.0.1} port=${DB_PORT:-3306}
  if mysqladmin --protocol=tcp -h "$host" -P "$port" -u "${DB_USER:-root}" ping >/dev/null 2>&1; then
    return 0
  fi
  if [ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ]; then
    echo "MariaDB is not answering on $host:$port; starting it" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 120); do
    if mysqladmin --protocol=tcp -h "$host" -P "$port" -u "${DB_USER:-root}" ping >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  echo "MariaDB did not answer on $host:$port within 60 s" >&2
  return 1
}

# Create .venv if needed and install the given requirements file (quietly, only when it changed).
ensure_venv() {
  local requirements=$1
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$requirements")"
  if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
  fi
}
