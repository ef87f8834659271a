"""A clock the cluster tests move, for real gunicorn instances (freezegun cannot reach them).

Put on PYTHONPATH of a served instance together with WME_TEST_CLOCK_FILE, this shifts the
service's one UTC clock (`service.clock.utc_now`, replaced as soon as that module is loaded, so
every module importing it gets the shifted one) by the number of seconds written in that file,
re-read whenever it changes. Nothing else of the process is touched: sleeps,
timeouts and gunicorn's own clocks stay real (libfaketime moves those too, and Python's sleeps and
thread waits then fail or hang). Test-only: the service itself has no such setting.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from datetime import UTC, datetime, timedelta

_FILE = os.environ.get("WME_TEST_CLOCK_FILE", "")
# Module -> the clock functions in it to shift. A test fails if one of them disappears.
_CLOCKS = {"service.clock": ("utc_now",)}
_cache: dict[str, object] = {"mtime": None, "offset": timedelta(0)}


def _offset() -> timedelta:
    try:
        mtime = os.stat(_FILE).st_mtime_ns
    except OSError:
        return _cache["offset"]
    if mtime != _cache["mtime"]:
        with open(_FILE, encoding="ascii") as f:
            _cache["offset"] = timedelta(seconds=float(f.read().strip() or 0))
        _cache["mtime"] = mtime
    return _cache["offset"]


def shifted_now() -> datetime:
    return datetime.now(UTC) + _offset()


class _ShiftClocks(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _CLOCKS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            for attribute in _CLOCKS[name]:
                if not callable(getattr(module, attribute, None)):
                    raise RuntimeError(f"test clock: {name}.{attribute} is gone; update the hook")
                setattr(module, attribute, shifted_now)

        spec.loader.exec_module = exec_module
        return spec


if _FILE:
    sys.meta_path.insert(0, _ShiftClocks())
