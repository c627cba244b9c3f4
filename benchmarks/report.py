"""The markdown file a benchmark writes its tables to (docs/benchmarks/<script>.md by default), with its header."""

from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path


class Printed:
    """`print` to stdout that also keeps what it printed, for a report's body."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def __call__(self, *values: object, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        text = sep.join(str(v) for v in values) + end
        print(text, end="", flush=flush)
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def render(title: str, settings: str, body: str, argv: list[str] | None = None) -> str:
    """The file's text: title with today's date and the command line (`argv`, default sys.argv[1:]), settings, body."""
    args = sys.argv[1:] if argv is None else argv
    command = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *(shlex.quote(a) for a in args)])
    body = body.strip("\n")
    return f"# {title} ({datetime.date.today()}, `{command}`)\n\n{settings}\n\n{body}\n"


def write_report(path: str, title: str, settings: str, body: str, argv: list[str] | None = None) -> None:
    """Write `render(title, settings, body, argv)` to `path`, creating its folder; nothing when `path` is ''."""
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render(title, settings, body, argv), encoding="utf-8")
