"""`python -m service.serve [gunicorn options]`: what scripts/serve runs.

gunicorn reads WEB_CONCURRENCY (and PORT) from the environment when it is imported, with a bare
`int()`: a malformed value would end in a traceback that quotes it. So the settings are checked
here first, once, before gunicorn is even imported; then gunicorn runs in this same process with
the project's configuration file (which checks them again, for anyone who calls gunicorn
directly).
"""

from __future__ import annotations

import os
import sys

from service.config import PROJECT_ROOT, load_or_exit

CONFIG_FILE = PROJECT_ROOT / "service" / "gunicorn_conf.py"
APP = "service.wsgi:app"


def main() -> None:
    load_or_exit()
    # Validated: an empty WEB_CONCURRENCY means the default, which gunicorn's int() cannot read.
    if os.environ.get("WEB_CONCURRENCY", "").strip() == "":
        os.environ.pop("WEB_CONCURRENCY", None)
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", str(CONFIG_FILE), APP, *sys.argv[1:]]
    run(prog="gunicorn")


if __name__ == "__main__":
    main()
