"""Everything the CLI says: results on stdout (JSON lines), the rest on stderr.

Info lines and progress bars appear only on a terminal and without --quiet; warnings unless
--quiet; errors always, one line each, naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def one_line(msg: str) -> str:
    """msg with every unprintable character (line breaks, terminal escape codes, invisible format
    characters) written as its Python escape: a message about a file named 'a\\nb' stays one line,
    and a file name cannot drive the terminal."""
    if msg.isprintable():
        return msg
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in msg)


def print_error(msg: str) -> None:
    """The one way an error reaches stderr: `imgdiff: error: ` and msg on one line."""
    print(f"imgdiff: error: {one_line(msg)}", file=sys.stderr, flush=True)


class Reporter:
    def __init__(self, quiet: bool = False, json_lines: bool = False) -> None:
        self.quiet = quiet
        self.json = json_lines
        self.console = Console(stderr=True, highlight=False)
        self.interactive = sys.stderr.isatty() and not quiet
        self.progress: Progress | None = None
        self._files = self._steps = None
        self.context = ""  # the input being processed, for warnings raised deep inside a pipeline
        self.stdout_lost = False  # a result line could not be written: the run ends with exit 1

    def info(self, msg: str) -> None:
        if self.interactive:
            self.console.print(escape(one_line(msg)))

    def warn(self, msg: str) -> None:
        if not self.quiet:
            print(f"imgdiff: warning: {one_line(msg)}", file=sys.stderr, flush=True)

    def error(self, msg: str) -> None:
        print_error(msg)

    def result(self, record: dict) -> None:
        """One JSON line. If stdout is closed or full, say so once and keep going: the images are
        the results that matter, and the batch still writes them (`--json | head -n1`)."""
        if not self.json or self.stdout_lost:
            return
        try:
            sys.stdout.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
            sys.stdout.flush()
        except OSError as e:
            self.stdout_lost = True
            silence_stdout()
            why = "closed" if isinstance(e, BrokenPipeError) else (e.strerror or str(e))
            self.error(f"stdout: cannot write the JSON results ({why}); the images are still written")

    @contextlib.contextmanager
    def files(self, total: int, what: str):
        if not self.interactive:
            yield
            return
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with self.progress:
            self._files = self.progress.add_task(what, total=total)
            self._steps = self.progress.add_task("model", total=1, visible=False)
            yield
        self.progress = None

    def advance_file(self) -> None:
        if self.progress is not None:
            self.progress.advance(self._files)

    def step(self, done: int, total: int) -> None:
        """Progress over tiles x steps inside one image."""
        if self.progress is not None:
            self.progress.update(self._steps, completed=done, total=max(total, done), visible=done < total)


class RecordingReporter(Reporter):
    """A worker's reporter (imgdiff.cluster): it prints nothing and keeps every message, in order,
    for the driver to replay through its own Reporter, so a cluster run says what a local one says."""

    def __init__(self, quiet: bool = False, json_lines: bool = False) -> None:
        super().__init__(quiet, json_lines)
        self.interactive = False  # no progress bars in a worker
        self.calls: list[tuple[str, object]] = []

    def info(self, msg: str) -> None:
        self.calls.append(("info", msg))

    def warn(self, msg: str) -> None:
        self.calls.append(("warn", msg))

    def error(self, msg: str) -> None:
        self.calls.append(("error", msg))

    def result(self, record: dict) -> None:
        self.calls.append(("result", record))

    def take(self) -> list[tuple[str, object]]:
        calls, self.calls = self.calls, []
        return calls


def replay(rep: Reporter, calls: list[tuple[str, object]]) -> None:
    for kind, payload in calls:
        getattr(rep, kind)(payload)


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's final flush does not fail again with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
