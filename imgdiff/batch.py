"""Inputs to jobs and jobs to outputs: the Unix-tool contract of every image subcommand.

Inputs are files, folders, globs or '-' (stdin). Outputs go next to the input with a suffix,
into `-o DIR` keeping relative paths, to `-o FILE` for a single input, or to stdout with `-o -`.
An output is never the input, and never replaces an existing file without --overwrite.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ImgdiffError
from .io import FORMATS, INPUT_EXTS

GLOB_CHARS = set("*?[")


@dataclass
class Job:
    source: Path | None  # None: stdin
    base: Path | None  # the folder the input was found under (to keep relative paths)
    label: str
    output: Path | None = None  # None: stdout
    error: str | None = None  # set when the input itself is unusable (missing, no match)


def expand_inputs(inputs: list[str], recursive: bool) -> tuple[list[Job], bool]:
    """Jobs in a stable order, and whether the invocation names several images."""
    jobs: list[Job] = []
    many = len(inputs) > 1
    stdin_seen = False
    for spec in inputs:
        if spec == "-":
            if stdin_seen:
                raise ImgdiffError("'-' (stdin) can be given only once")
            stdin_seen = True
            jobs.append(Job(None, None, "<stdin>"))
            continue
        p = Path(spec)
        if p.is_dir():
            many = True
            walker = p.rglob("*") if recursive else p.glob("*")
            found = sorted(
                q for q in walker if q.is_file() and q.suffix.lower() in INPUT_EXTS and not q.name.startswith(".")
            )
            jobs.extend(Job(q, p, str(q)) for q in found)
        elif p.exists() or not (GLOB_CHARS & set(spec)):
            jobs.append(Job(p, None, spec, error=None if p.exists() else f"{spec}: no such file"))
        else:
            many = True
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=recursive) if Path(m).is_file())
            if not matches:
                jobs.append(Job(None, None, spec, error=f"{spec}: no file matches this pattern"))
            root = _glob_root(spec)
            jobs.extend(Job(m, root, str(m)) for m in matches)
    return jobs, many or len(jobs) > 1


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = [part for part in parts[: next((i for i, s in enumerate(parts) if GLOB_CHARS & set(s)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def plan_outputs(
    jobs: list[Job], many: bool, output: str | None, suffix: str | None, default_suffix: str, ext: str | None = None
) -> None:
    """Fill in job.output. `ext` forces an output extension (e.g. '.png')."""
    if output == "-" and many:
        raise ImgdiffError("-o - (stdout) takes a single input")
    out = Path(output) if output and output != "-" else None
    dir_mode = out is not None and (
        many or out.is_dir() or output.endswith(os.sep) or out.suffix.lower() not in FORMATS
    )
    for job in jobs:
        if job.error:
            continue
        src_ext = job.source.suffix.lower() if job.source else ".png"
        new_ext = ext or (src_ext if src_ext in FORMATS else ".png")
        if output == "-" or (output is None and job.source is None):
            job.output = None
        elif out is None:
            assert job.source is not None
            job.output = job.source.with_name(f"{job.source.stem}{suffix or default_suffix}{new_ext}")
        elif dir_mode:
            rel = (
                Path("stdin.png")
                if job.source is None
                else (
                    job.source.relative_to(job.base)
                    if job.base and job.source.is_relative_to(job.base)
                    else Path(job.source.name)
                )
            )
            job.output = out / rel.parent / f"{rel.stem}{suffix or ''}{new_ext}"
        else:
            job.output = out
    seen: dict[Path, str] = {}
    for job in jobs:
        if job.output is None or job.error:
            continue
        key = job.output.resolve()
        if job.source is not None and key == job.source.resolve():
            job.error = f"{job.label}: output would overwrite the input; give -o or --suffix"
        elif key in seen:
            job.error = f"{job.label}: output {job.output} is also the output of {seen[key]}"
        else:
            seen[key] = job.label
