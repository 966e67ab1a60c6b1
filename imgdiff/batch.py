"""Inputs to jobs and jobs to outputs: the Unix-tool contract of every image subcommand.

Inputs are files, folders, globs or '-' (stdin). Outputs go next to the input with a suffix,
into `-o DIR` keeping relative paths, to `-o FILE` for a single input, or to stdout with `-o -`.
An output is never an input of the same command (not the image, not a style image), never
replaces an existing file without --overwrite, and a rerun over a folder does not take the
command's own earlier outputs as new inputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ImgdiffError, UsageError
from .io import (
    FORMATS,
    INPUT_EXTS,
    encode_image,
    is_temp_name,
    lost_on_write,
    output_format,
    read_image,
    stdout_is_terminal,
    write_atomic,
    write_stdout,
)
from .report import Reporter, silence_stdout

GLOB_CHARS = set("*?[")
# extensions of image formats people may type after -o that we cannot write: an error, not a folder
UNWRITABLE_IMAGE_EXTS = {".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico", ".tga", ".ppm", ".pgm", ".psd"}


@dataclass
class Job:
    source: Path | None  # None: stdin
    base: Path | None  # the folder the input was found under (to keep relative paths)
    label: str
    output: Path | None = None  # None: stdout
    error: str | None = None  # set when the input itself is unusable (missing, no match)
    expanded: bool = False  # found by a folder walk or a glob, not named by the user
    seed: int | None = None  # generate: the seed of this output


def expand_inputs(inputs: list[str], recursive: bool) -> tuple[list[Job], bool]:
    """Jobs in a stable order, and whether the invocation names several images.

    Folders and globs never descend into symlinked folders (a link to `..` would repeat the
    tree), and a file reached twice (two specs, or a link) is one job."""
    jobs: list[Job] = []
    many = len(inputs) > 1
    stdin_seen = False
    seen: set[Path] = set()

    def add(found: list[Path], base: Path) -> None:
        for q in found:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                jobs.append(Job(q, base, str(q), expanded=True))

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
            add(_files_under(p, "**/*" if recursive else "*", INPUT_EXTS), p)
        elif p.exists() or not (GLOB_CHARS & set(spec)):
            if p.exists():
                seen.add(p.resolve())
            jobs.append(Job(p, None, spec, error=None if p.exists() else f"{spec}: no such file"))
        else:
            many = True
            root, pattern = split_glob(spec, recursive)
            matches = _files_under(root, pattern) if root.is_dir() else []
            if not matches:
                jobs.append(Job(None, None, spec, error=f"{spec}: no file matches this pattern"))
            add(matches, root)
    return jobs, many or len(jobs) > 1


def _files_under(root: Path, pattern: str, exts: tuple[str, ...] | None = None) -> list[Path]:
    """Visible files under root matching pattern. pathlib's `**` does not follow symlinked
    folders, where glob.glob's does (a loop multiplied a batch of 3 images into 122 outputs)."""
    try:
        found = [
            q
            for q in root.glob(pattern)
            if q.is_file()
            and (exts is None or q.suffix.lower() in exts)
            and not any(part.startswith(".") for part in q.relative_to(root).parts)
        ]
    except OSError as e:
        raise ImgdiffError(f"{root}: cannot list ({e.strerror or e})") from None
    return sorted(found)


def split_glob(pattern: str, recursive: bool) -> tuple[Path, str]:
    """'scans/**/*.tif' -> (scans, '**/*.tif'); without --recursive `**` matches one level, as in glob."""
    parts = Path(pattern).parts
    k = next((i for i, s in enumerate(parts) if GLOB_CHARS & set(s)), len(parts))
    rest = ["*" if part == "**" and not recursive else part for part in parts[k:]]
    return (Path(*parts[:k]) if k else Path(".")), str(Path(*rest))


def png_task(path: Path) -> str | None:
    """The task in a PNG's `imgdiff` provenance chunk; reads only the chunks before the pixels."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            for _ in range(64):
                head = f.read(8)
                if len(head) < 8:
                    return None
                n, kind = int.from_bytes(head[:4], "big"), head[4:]
                if kind in (b"IDAT", b"IEND") or n > 1 << 20:
                    return None
                body = f.read(n)
                f.seek(4, os.SEEK_CUR)
                if kind == b"tEXt" and body.startswith(b"imgdiff\x00"):
                    record = json.loads(body[8:].decode("latin-1"))
                    return record.get("task") if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None
    return None


def own_output_reason(job: Job, task: str, suffix: str, out_dir: Path | None) -> str | None:
    """Why the job's input looks like an output of this same command, or None: it lies in an output
    folder nested under the folder it was found in, its name ends with the suffix this run adds,
    or its provenance chunk names this task."""
    assert job.source is not None
    path, root = job.source.resolve(), (job.base or job.source.parent).resolve()
    if out_dir is not None:
        target = out_dir.resolve()
        if path.is_relative_to(target) and not root.is_relative_to(target):
            return f"it is inside the output folder {out_dir}"
    if suffix and job.source.stem.endswith(suffix):
        return f"its name ends with {suffix!r}, the suffix this command adds"
    if job.source.suffix.lower() == ".png" and png_task(job.source) == task:
        return f"it is an imgdiff {task} output (provenance chunk)"
    return None


def drop_own_outputs(jobs: list[Job], task: str, suffix: str, out_dir: Path | None) -> list[tuple[Job, str]]:
    """Remove the jobs whose input is an output of this command; returns them with the reason.

    Applies to files found by a folder walk or a glob, and to named files when several are named
    (a shell glob); a single named file is always processed: naming it alone is the way to say so."""
    named = [j for j in jobs if j.source is not None and not j.expanded]
    dropped = []
    for job in list(jobs):
        if job.source is None or job.error or not (job.expanded or len(named) > 1):
            continue
        reason = own_output_reason(job, task, suffix, out_dir)
        if reason:
            jobs.remove(job)
            dropped.append((job, reason))
    return dropped


def output_dir(output: str | None, many: bool) -> Path | None:
    """The folder -o names, or None when -o is absent, '-', or a single file."""
    if not output or output == "-":
        return None
    out = Path(output)
    if out.is_dir() or output.endswith(os.sep):
        return out
    ext = out.suffix.lower()
    if ext in UNWRITABLE_IMAGE_EXTS:
        raise ImgdiffError(f"-o {output}: cannot write {ext} images; use one of {', '.join(FORMATS)}")
    if ext in FORMATS:
        if many:
            raise ImgdiffError(f"-o {output} names one file but several images are given; -o takes a folder here")
        return None
    return out


def plan_outputs(
    jobs: list[Job],
    many: bool,
    output: str | None,
    suffix: str | None,
    default_suffix: str,
    ext: str | None = None,
    protected: tuple[Path, ...] = (),
) -> None:
    """Fill in job.output. `ext` forces an output extension (e.g. '.png'); `protected` are the
    command's other inputs (a style image), which no output may replace."""
    if output == "-" and many:
        raise ImgdiffError("-o - (stdout) takes a single input")
    out = Path(output) if output and output != "-" else None
    out_dir = output_dir(output, many)
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
        elif out_dir is not None:
            rel = (
                Path("stdin.png")
                if job.source is None
                else (
                    job.source.relative_to(job.base)
                    if job.base and job.source.is_relative_to(job.base)
                    else Path(job.source.name)
                )
            )
            job.output = out_dir / rel.parent / f"{rel.stem}{suffix or ''}{new_ext}"
        else:
            job.output = out
    inputs = {j.source.resolve(): j.label for j in jobs if j.source is not None}
    inputs.update({p.resolve(): str(p) for p in protected})
    seen: dict[Path, str] = {}
    for job in jobs:
        if job.output is None or job.error:
            continue
        key = job.output.resolve()
        if key in inputs:
            what = "the input" if job.source is not None and key == job.source.resolve() else inputs[key]
            job.error = f"{job.label}: output {job.output} would overwrite {what}; give -o or --suffix"
        elif key in seen:
            job.error = f"{job.label}: output {job.output} is also the output of {seen[key]}"
        else:
            seen[key] = job.label


def check_not_an_input(path: Path, jobs: list[Job], protected: tuple[Path, ...] = (), option: str = "-o") -> None:
    """Refuse an extra output (e.g. --save-style) that names one of the command's inputs."""
    key = path.resolve()
    for p in [j.source for j in jobs if j.source is not None] + list(protected):
        if p.resolve() == key:
            raise ImgdiffError(f"{option} {path} would overwrite the input {p}")


STALE_TEMP_SECONDS = 15 * 60  # a temp lives for one write (seconds); older ones were left by a killed run


def clean_stale_temps(folders: set[Path]) -> list[Path]:
    """Remove imgdiff temp files that a SIGKILLed run left in the output folders (only ours, only old)."""
    removed = []
    now = time.time()
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
                    if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
            except OSError:
                continue
    return removed


# --- the job runner: one loop for every image command --------------------------------------------


@dataclass
class BatchOptions:
    """What the runner reads of a command's options (the CLI's options extend it)."""

    output: str | None
    suffix: str | None
    overwrite: bool
    skip_existing: bool
    recursive: bool
    json: bool
    max_pixels: int
    ray: str | None  # a Ray cluster runs the jobs (imgdiff.cluster)
    workers: int  # Ray actors (0: one per GPU, else one per --threads cores)


def plan_batch(
    inputs: list[str],
    common: BatchOptions,
    task: str,
    default_suffix: str,
    rep: Reporter,
    output_ext: str | None = None,
    protected: tuple[Path, ...] = (),
) -> list[Job]:
    """Inputs to jobs with their outputs; every usage error (UsageError) is raised here, before any
    model is loaded, as diffusers pipelines run check_inputs first."""
    if common.overwrite and common.skip_existing:
        raise UsageError("--overwrite and --skip-existing exclude each other")
    if common.suffix and any(c in common.suffix for c in {"/", "\0", os.sep}):
        raise UsageError(f"--suffix {common.suffix!r}: it ends a file name, so it cannot hold '/' or NUL")
    try:
        jobs, many = expand_inputs(inputs, common.recursive)
        suffix = (common.suffix or default_suffix) if common.output is None else (common.suffix or "")
        dropped = drop_own_outputs(jobs, task, suffix, output_dir(common.output, many))
        plan_outputs(jobs, many, common.output, common.suffix, default_suffix, output_ext, protected)
    except UsageError:
        raise
    except ImgdiffError as e:
        raise UsageError(str(e)) from None
    for job, reason in dropped:
        (rep.info if job.expanded else rep.warn)(f"{job.label}: skipped, {reason} (name it alone to process it)")
    check_stdout(jobs, common)
    return jobs


def needs_work(job: Job, common: BatchOptions) -> bool:
    """Whether run_job would get as far as the model for this job."""
    if job.error:
        return False
    out = job.output
    return out is None or common.overwrite or not (out.exists() or out.is_symlink())


def check_stdout(jobs: list[Job], common: BatchOptions) -> None:
    """Image bytes and JSON lines cannot share stdout, and image bytes do not go to a terminal."""
    to_stdout = any(j.output is None and not j.error for j in jobs)
    if common.ray:
        check_ray(jobs, to_stdout, common.ray)
    if to_stdout and common.json:
        raise UsageError("--json and an image on stdout (-o -, or stdin without -o) both want stdout; give -o FILE")
    if to_stdout and stdout_is_terminal():
        raise UsageError("not writing image bytes to a terminal; redirect stdout or give -o FILE")


def check_ray(jobs: list[Job], to_stdout: bool, address: str) -> None:
    """--ray: files in and out (the workers read and write them), and a cluster reached, before any
    model is loaded."""
    from .cluster import connect

    if to_stdout:
        raise UsageError("--ray writes files on the workers: give -o FILE or -o DIR, not stdout")
    if any(j.source is None and j.seed is None and not j.error for j in jobs):
        raise UsageError("--ray reads files on the workers: not stdin")
    try:
        connect(address)
    except ImgdiffError as e:
        raise UsageError(str(e)) from None


def run_jobs(jobs: list[Job], common: BatchOptions, task: str, process, rep: Reporter, read=None) -> int:
    """Every job in order, each failure costing one file; 0 when all went well, else 1."""
    failed = 0
    clean_stale_temps({j.output.parent for j in jobs if j.output is not None})
    if common.ray and process is not None:
        from .cluster import run_jobs_ray

        return run_jobs_ray(jobs, common, task, process, rep, read)
    with rep.files(len(jobs), task):
        for job in jobs:
            ok = run_job(job, common, task, process, rep, read)
            failed += not ok
            rep.advance_file()
    return batch_status(rep, failed, len(jobs))


def batch_status(rep: Reporter, failed: int, total: int) -> int:
    """The batch's last word and exit code, locally or on a cluster: 0 when all went well, else 1."""
    if failed and total > 1:
        rep.warn(f"{failed} of {total} inputs failed")
    return 1 if failed or rep.stdout_lost else 0


def run_job(job: Job, common: BatchOptions, task: str, process, rep: Reporter, read=None) -> bool:
    """One input to one output; every failure is one stderr line and a False return.
    `read(job)` replaces decoding the input (generate has none)."""
    record = {"input": job.label, "output": "-" if job.output is None else str(job.output), "task": task}
    t0 = time.time()

    def failed(msg: str) -> bool:
        rep.error(msg)
        rep.result({**record, "status": "error", "error": msg})
        return False

    if job.error:
        return failed(job.error)
    out = job.output
    if out is not None and (out.exists() or out.is_symlink()):
        if common.skip_existing:
            rep.info(f"{job.label}: {out} exists, skipped")
            rep.result({**record, "status": "skipped"})
            return True
        if not common.overwrite:
            return failed(f"{job.label}: {out} already exists (use --overwrite or --skip-existing)")
        if out.is_dir():
            return failed(f"{job.label}: {out} is a directory")
    try:
        fmt = "PNG" if out is None else output_format(out)
        if out is not None:
            ensure_parent(out, common)  # before the model runs: a bad target costs nothing
        if read is not None:
            img = read(job)
        else:
            src = sys.stdin.buffer.read() if job.source is None else job.source
            img = read_image(src, name=job.label, max_pixels=common.max_pixels)
            for w in img.warnings:
                rep.warn(w)
        rep.context = job.label
        result, meta, extra = process(img, rep)
        for w in lost_on_write(result, fmt):
            rep.warn(f"{job.label} -> {record['output']}: {w}")
        data = encode_image(result, fmt, meta)
        if out is None:
            write_stdout(data)
        else:
            write_atomic(out, data, overwrite=common.overwrite)
    except ImgdiffError as e:  # named after the file, unless the message already names it
        return failed(str(e) if job.label in str(e) else f"{job.label}: {e}")
    except FileExistsError:
        return failed(f"{job.label}: {out} appeared meanwhile; not replaced (use --overwrite)")
    except BrokenPipeError:
        silence_stdout()
        return failed(f"{job.label}: stdout was closed before the image was written")
    except OSError as e:
        if out is None:
            silence_stdout()  # or the interpreter's final flush fails again, with a traceback
        target = "stdout" if out is None else out
        return failed(f"{job.label}: cannot write {target}: {e.strerror or e}")
    except MemoryError:
        return failed(f"{job.label}: out of memory (try a smaller --tile)")
    except Exception as e:  # a bug must cost one file, not the batch; IMGDIFF_DEBUG=1 shows the traceback
        if os.environ.get("IMGDIFF_DEBUG"):
            raise
        first = str(e).splitlines()[0][:200] if str(e) else ""
        return failed(f"{job.label}: internal error {type(e).__name__}: {first} (IMGDIFF_DEBUG=1 for details)")
    seconds = round(time.time() - t0, 3)
    rep.info(f"{job.label} -> {record['output']}  ({', '.join(f'{k} {v}' for k, v in extra.items())}, {seconds} s)")
    rep.result({**record, "status": "ok", "seconds": seconds, **extra})
    return True


def ensure_parent(out: Path, common: BatchOptions) -> None:
    """Create folders under an -o DIR; a single -o FILE's folder must already exist."""
    parent = out.parent
    if parent.is_dir():
        return
    if common.output and Path(common.output) != out:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            return
        except (FileExistsError, NotADirectoryError):
            raise ImgdiffError(f"cannot create folder {parent}: a file is in the way") from None
        except OSError as e:
            raise ImgdiffError(f"cannot create folder {parent}: {e.strerror or e}") from None
    raise ImgdiffError(f"folder {parent} does not exist")
