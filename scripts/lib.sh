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
  # By its pid file, not by its program: other servers of the same binary (a Galera node of
  # scripts/galera) must not pass for the local one.
  local pidfile
  pidfile=$(my_print_defaults mysqld mariadbd 2>/dev/null | sed -n 's/^--pid-file=//p' | tail -n 1)
  pidfile=${pidfile:-/run/mysqld/mysqld.pid}
  [ -d "$(dirname "$pidfile")" ] || install -d -o mysql -g mysql "$(dirname "$pidfile")"
  if ! start-stop-daemon --start --oknodo --background --pidfile "$pidfile" \
       --exec /usr/sbin/mariadbd; then
    echo "could not start /usr/sbin/mariadbd (start it yourself, e.g. service mariadb start)" >&2
    return 1
  fi
  .venv/bin/python -m service.preflight database --wait 30
}

# Check that the MySQL/MariaDB server of DB_HOST:DB_PORT answers (see preflight).
ensure_mariadb() {
  preflight database
}

# Export a throwaway KEY_HASH_SECRET unless one is set: for scripts whose databases are their own
# (the settings check and the flask commands refuse to run without a secret).
export_throwaway_key_hash_secret() {
  KEY_HASH_SECRET=${KEY_HASH_SECRET:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')}
  export KEY_HASH_SECRET
}

# For the scripts that run the test harness (scripts/test, scripts/bench): check the harness's
# server (tests/testkit.py reads TEST_DB_*), not the one .env points scripts/run at. The harness
# gives its servers and keys its own secret; the check reads the settings as the app does.
ensure_harness_mariadb() {
  export_throwaway_key_hash_secret
  DB_HOST=${TEST_DB_HOST:-127.0.0.1} DB_PORT=${TEST_DB_PORT:-3306} DB_USER=${TEST_DB_USER:-root} \
    DB_PASS=${TEST_DB_PASS:-} ensure_mariadb
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
    # Every requirements file includes requirements.txt: that one is installed too.
    touch "$stamp" .venv/.installed-requirements.txt
  fi
}

# Make sure PROGRAM (from the Debian package PACKAGE) is there. When it is missing: with INSTALL
# set to yes, install it with apt-get, its output visible; otherwise say what is missing and the
# command that installs it, and fail. Never installs anything unasked.
#   need_debian_package PROGRAM PACKAGE INSTALL SCRIPT
need_debian_package() {
  local program=$1 package=$2 install=$3 script=$4
  if command -v "$program" >/dev/null 2>&1; then
    return 0
  fi
  if [ "$install" != yes ]; then
    echo "$script needs $program (Debian's $package), which is missing. Install it with:" >&2
    echo "  apt-get install $package    (or run $script --install to let it do so)" >&2
    return 1
  fi
  local sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  echo "installing Debian's $package (apt-get install -y $package)" >&2
  $sudo_cmd apt-get update
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y "$package"
}
