"""genlab's cache folder: fetched assets, converted models, and numba's compiled kernels.

`$GENLAB_CACHE`, else `$XDG_CACHE_HOME/genlab` (`~/.cache/genlab`). Kernels go to its `numba` folder unless
`NUMBA_CACHE_DIR` is set: one place per machine, written by the first process that compiles a kernel and read by
every later one (other processes, Ray workers on the node), whether genlab is installed editable or read-only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


def route_numba_cache() -> None:
    """Send numba's on-disk cache to `kernel_dir()` (before genlab's kernels are defined). The environment variable
    is set too, so that child processes (Ray workers) share the folder."""
    folder = str(kernel_dir())
    os.environ["NUMBA_CACHE_DIR"] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba was imported before genlab: it read the variable already
        config.CACHE_DIR = folder  # type: ignore[attr-defined]


@contextmanager
def first_compile(what: str) -> Iterator[None]:
    """Log one line before `what` compiles its kernels for the first time on this machine (tens of seconds once,
    cached after), and remember that it did."""
    from genlab import __version__

    marker = kernel_dir() / f".compiled-{what}-{__version__}"
    if marker.exists():
        yield
        return
    _log.warning("genlab: compiling the %s kernels for this machine, once (cached in %s)", what, kernel_dir())
    yield
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


route_numba_cache()  # on import, which genlab/__init__.py does first: numba reads the folder as kernels are defined
