"""genlab's cache folder: fetched assets, converted models, and numba's compiled kernels.

`$GENLAB_CACHE`, else `$XDG_CACHE_HOME/genlab` (`~/.cache/genlab`). Kernels go to its `numba` folder unless
`NUMBA_CACHE_DIR` is set: one place per machine, written by the first process that compiles a kernel and read by
every later one (other processes, Ray workers on the node), whether genlab is installed editable or read-only.
The first compile in a process logs one line (logger "genlab", level WARNING), so a first run's wait is explained.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_log = logging.getLogger("genlab")


def cache_dir() -> Path:
    """Where genlab keeps fetched and converted assets: `$GENLAB_CACHE`, else `~/.cache/genlab`."""
    root = os.environ.get("GENLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "genlab"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def kernel_dir() -> Path:
    """numba's cache folder for genlab's kernels: `$NUMBA_CACHE_DIR` if set, else `cache_dir() / "numba"`."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir() / "numba")


_compiled = [0]  # genlab kernels compiled (not loaded from the cache) in this process


def kernels_compiled() -> int:
    """How many genlab kernels this process has compiled so far (a timing that grew it paid first-use compiles)."""
    return _compiled[0]


def route_numba_cache() -> None:
    """Send numba's on-disk cache to `kernel_dir()` (before genlab's kernels are defined) and log the first compile
    of a genlab kernel in this process. The environment variable is set too, so that child processes (Ray workers)
    share the folder."""
    folder = str(kernel_dir())
    os.environ["NUMBA_CACHE_DIR"] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba was imported before genlab: it read the variable already
        config.CACHE_DIR = folder  # type: ignore[attr-defined]
    from numba.core import event

    class FirstCompile(event.Listener):
        def on_start(self, event) -> None:
            dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not module.startswith("genlab."):
                return
            if _compiled[0] == 0:
                _log.warning(
                    "genlab: compiling its numba kernels for this machine (first use only: they are cached in %s)",
                    folder,
                )
            _compiled[0] += 1

        def on_end(self, event) -> None:
            pass

    event.register("numba:compile", FirstCompile())


route_numba_cache()  # on import, which genlab/__init__.py does first: numba reads the folder as kernels are defined
