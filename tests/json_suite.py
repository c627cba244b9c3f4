"""The official JSON-Schema-Test-Suite as an oracle for `JsonSchema`: fetching it, running it, judging it.

The suite ships inside the `jsonschema` sdist (`json/tests/<draft>/*.json`, remote documents in `json/remotes/`).
It reaches the tests the way every genlab asset does, through the package registry: `pip download` fetches the
pinned sdist once, the `json/tests/` and `json/remotes/` members are unpacked under the genlab cache
(`<cache>/pypi/jsonschema-<version>/`, the folder `genlab.models.pypi.fetch` would use), and later runs only read
the cache. (`fetch` itself wants the member names up front; the suite is a few hundred files, so this module
unpacks whole folders itself, with `pip download` and the same cache layout.) Without a network and without a cache,
`suite_root` raises `SuiteUnavailable` and the tests skip.

Each suite file is a list of groups `{"description", "schema", "tests": [{"description", "data", "valid"}]}`.
`run_file` compiles every group's schema with `JsonSchema(schema, draft=..., strict=True)` (a schema refused there
for an unknown keyword or format is compiled again with the default, strict=False, which ignores it as an
annotation) and checks every test's data as genlab writes it (`serialize`); `judge` turns one group's run into
mismatch lines, given what the caller expects.
Runs are cached per process, so the per-file tests, the known-bug tests and the coverage test share one run.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.constraints.json_schema import JsonSchema
from genlab.errors import GenlabError, SchemaAnnotationWarning
from genlab.models.pypi import cache_dir

REQUIREMENT = "jsonschema==4.26.0"
# suite folder -> the `draft=` genlab is given for it
DRAFTS = {"draft2020-12": 2020, "draft2019-09": 2019, "draft7": 7, "draft6": 6, "draft4": 4}
# Besides each draft folder's own files, only `optional/format/` is run: genlab asserts the formats it knows (its
# validator passes a format checker), so the suite's format tests are a real oracle for them. The rest of
# `optional/` tests ECMA-262 regex dialect details, bignums and other behaviour the specification leaves open,
# and its labels are not what jsonschema (genlab's final check) decides.
OPTIONAL_FOLDERS = ("optional/format",)
# formats genlab has always known: a schema using one is never compiled with strict=False instead (an "unknown
# format" error for one of these is a regression); the formats genlab knows now are in its FORMATS
BASELINE_FORMATS = (
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
    "uri",
    "uri-reference",
)
REMOTE_BASE = "http://localhost:1234/"  # where the suite's remote documents (json/remotes/) live
_MARKER = ".json-test-suite-complete"
_UNKNOWN = re.compile(r"unknown (format|keyword) '([^']*)'")


class SuiteUnavailable(Exception):
    """The suite could not be downloaded (no network, no cache); the message says why."""


# --- fetching ----------------------------------------------------------------------------------------------------


_failure: SuiteUnavailable | None = None


def suite_root() -> Path:
    """The unpacked `json/` folder of the suite (tests and remotes), downloading it on first use. A failure is
    remembered for the rest of the process: pip is slow to fail without a network, so it is tried once."""
    global _failure
    if _failure is not None:
        raise _failure
    try:
        return _suite_root()
    except SuiteUnavailable as err:
        _failure = err
        raise


@functools.cache
def _suite_root() -> Path:
    name, _, version = REQUIREMENT.partition("==")
    target = cache_dir() / "pypi" / f"{name}-{version}"
    if (target / _MARKER).exists():
        return target / "json"
    with tempfile.TemporaryDirectory(prefix="genlab-pip-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--retries",
            "1",
            "--timeout",
            "30",
            "-d",
            tmp,
            REQUIREMENT,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SuiteUnavailable(f"pip download {REQUIREMENT} failed: {err}") from err
        if done.returncode != 0:
            raise SuiteUnavailable(
                f"pip download {REQUIREMENT} failed (no network and no cached copy under "
                f"{target}?): {' '.join(done.stderr.split())[-600:]}"
            )
        archives = [p for p in Path(tmp).iterdir() if p.name.endswith((".tar.gz", ".tgz"))]
        if len(archives) != 1:
            raise SuiteUnavailable(f"pip download {REQUIREMENT} gave {sorted(os.listdir(tmp))}, expected one sdist")
        _unpack(archives[0], target)
    if not (target / "json" / "tests" / "draft2020-12").is_dir():
        raise SuiteUnavailable(f"{REQUIREMENT}'s sdist has no json/tests/draft2020-12 folder")
    (target / _MARKER).write_text(REQUIREMENT + "\n")
    return target / "json"


def _unpack(archive: Path, target: Path) -> None:
    """Copy `json/tests/**` and `json/remotes/**` (without the sdist's top folder) into `target`, file by file
    atomically, so an interrupted unpack never leaves a half-written file."""
    with tarfile.open(archive) as tf:
        for info in tf:
            inner = info.name.split("/", 1)[1] if "/" in info.name else ""
            if not info.isfile() or not inner.startswith(("json/tests/", "json/remotes/")):
                continue
            if ".." in inner.split("/"):
                continue
            dest = target / inner
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            with tf.extractfile(info) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(part, dest)


def suite_files() -> list[tuple[str, str]]:
    """(draft folder, file path inside it) of every suite file that is run, in a stable order."""
    tests = suite_root() / "tests"
    out = []
    for folder in DRAFTS:
        base = tests / folder
        for sub in ("",) + OPTIONAL_FOLDERS:
            for path in sorted((base / sub).glob("*.json")):
                out.append((folder, path.relative_to(base).as_posix()))
    return out


@functools.cache
def load_groups(folder: str, rel: str) -> list[dict]:
    return json.loads((suite_root() / "tests" / folder / rel).read_text(encoding="utf-8"))


# --- running -----------------------------------------------------------------------------------------------------


@dataclass
class CaseRun:
    """One test of a group: its label, the text genlab writes for its data, and what genlab says of it."""

    description: str
    valid: bool
    text: str | None = None
    grammar: bool | None = None  # c.grammar.check(text)
    check: bool | None = None  # c.check(text)
    crash: str | None = None  # a non-genlab exception while serialising or checking


@dataclass
class GroupRun:
    """One group: how its schema compiled, and each test's outcome (empty when it did not compile)."""

    description: str
    refused: str | None = None  # a GenlabError from the constructor: "Type: message"
    crash: str | None = None  # any other exception from the constructor
    lenient: str | None = None  # compiled only with strict=False, because of this unknown format/keyword
    cases: list[CaseRun] = field(default_factory=list)

    @property
    def compiled(self) -> bool:
        return self.refused is None and self.crash is None

    @property
    def all_invalid(self) -> bool:
        return all(not c.valid for c in self.cases)


def _crash(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)[-1]
    return f"{type(err).__name__}: {err} (at {Path(where.filename).name}:{where.lineno})"


def _compile(schema: Any, draft: int, run: GroupRun) -> JsonSchema | None:
    try:
        return JsonSchema(schema, draft=draft, strict=True)
    except GenlabError as err:
        unknown = _UNKNOWN.search(str(err))
        if unknown is None or (unknown.group(1) == "format" and unknown.group(2) in BASELINE_FORMATS):
            run.refused = f"{type(err).__name__}: {err}"
            return None
        run.lenient = str(err)
    except Exception as err:  # noqa: BLE001 - a crash is a finding, reported by judge
        run.crash = _crash(err)
        return None
    try:  # an unknown format or keyword: the default (strict=False) ignores it as an annotation, so the grammar
        # must still admit the valid instances
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SchemaAnnotationWarning)
            return JsonSchema(schema, draft=draft)
    except GenlabError as err:
        run.refused = f"{type(err).__name__} (strict=False): {err}"
    except Exception as err:  # noqa: BLE001
        run.crash = "strict=False: " + _crash(err)
    return None


def run_group(group: dict, draft: int) -> GroupRun:
    run = GroupRun(group["description"])
    c = _compile(group["schema"], draft, run)
    for test in group["tests"]:
        case = CaseRun(test["description"], bool(test["valid"]))
        run.cases.append(case)
        if c is None:
            continue
        try:
            case.text = c.serialize(test["data"])
            case.grammar = bool(c.grammar.check(case.text))
            case.check = bool(c.check(case.text))
        except Exception as err:  # noqa: BLE001
            case.crash = _crash(err)
    return run


@functools.cache
def run_file(folder: str, rel: str, skip: frozenset[str] = frozenset()) -> tuple[GroupRun, ...]:
    """The groups of one suite file, but those whose description is in `skip`, run through genlab (once per
    process). Skipped groups are never compiled: a schema that needs a remote document must not reach a
    validator that might try to fetch it."""
    return tuple(run_group(g, DRAFTS[folder]) for g in load_groups(folder, rel) if g["description"] not in skip)


# --- judging -----------------------------------------------------------------------------------------------------


def judge(
    where: str,
    run: GroupRun,
    *,
    tests: set[str] | None = None,
    flipped: frozenset[str] = frozenset(),
    refusal: str | None = None,
) -> list[str]:
    """Mismatch lines for one group's run, judged on the tests named in `tests` (all when None).

    A valid instance must pass both the grammar and the whole check; an invalid one must fail the check, except
    under strict=False (an ignored unknown keyword may only widen what is accepted). `flipped` names tests on
    which genlab is expected to give the other verdict (documented differences: a valid instance it rejects, an
    invalid one it accepts); `refusal` is a regex that a compile-time refusal of
    this schema may match (documented limitations). A refusal is also right when every test is invalid: genlab
    must refuse an unsatisfiable schema.
    """
    head = f"{where} :: {run.description}"
    if run.crash is not None:
        return [f"{head} :: CRASH while compiling (not a GenlabError): {run.crash}"]
    if run.refused is not None:
        if run.all_invalid:
            return []
        if refusal is not None and re.search(refusal, run.refused):
            return []
        return [f"{head} :: refused a satisfiable schema: {run.refused}"]
    out = []
    for case in run.cases:
        if tests is not None and case.description not in tests:
            continue
        line = f"{head} :: {case.description} :: text={case.text!r}"
        if case.crash is not None:
            out.append(f"{line} :: CRASH: {case.crash}")
        elif case.description in flipped:
            if case.check == case.valid:
                out.append(
                    f"{line} :: listed as an expected difference, but genlab now agrees with the suite "
                    f"(check() is {case.check}): remove the entry"
                )
        elif case.valid and not case.grammar:
            out.append(f"{line} :: valid, but the GRAMMAR rejects it")
        elif case.valid and not case.check:
            out.append(f"{line} :: valid, grammar accepts, but check() rejects it")
        elif not case.valid and case.check and run.lenient is None:
            out.append(f"{line} :: invalid, but check() accepts it")
    return out
