"""A batch on a Ray cluster (`--ray`, from `pip install 'imgdiff[ray]'`): the same jobs, the same runner.

The driver plans the batch exactly as a local run does (outputs, --overwrite / --skip-existing,
usage errors, the model check). Each actor holds the command's work object, whose options travel
and whose models load once per actor, and runs `batch.run_job` on one file at a time: it reads the
input and writes the output atomically itself (the files are on storage the workers share), and
reports through a RecordingReporter that the driver replays in input order, so stderr, --json and
the exit code are those of a local run. A killed worker is restarted and its file retried.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .batch import BatchOptions, Job, batch_status, needs_work, run_job
from .errors import ImgdiffError
from .report import RecordingReporter, Reporter, replay

RESTARTS = 2  # a worker killed mid-file is restarted (model reloaded) and the file retried this often
LOCAL_OBJECT_STORE = 128 * 1024**2  # jobs carry paths, not pixels: a local cluster needs little
_connected: str | None = None  # the --ray address this process connected to, if it did


def connect(address: str):
    """`local` starts a cluster on this machine, `auto` joins the running one (RAY_ADDRESS or
    `ray start`), anything else is a cluster address (host:port or ray://host:10001).

    A process holds one Ray connection: a second address is refused rather than silently sent to the
    first cluster; a connection the caller made with `ray.init` itself is used as it is."""
    global _connected
    try:
        import ray
    except ImportError:
        raise ImgdiffError("--ray needs Ray: pip install 'imgdiff[ray]'") from None
    if ray.is_initialized():
        if _connected is not None and _connected != address:
            raise ImgdiffError(f"--ray {address}: this process is already connected to --ray {_connected}")
    else:
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if address == "local":
                ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE, **quiet)
            else:
                ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ImgdiffError(f"--ray {address}: cannot reach the cluster ({str(e).splitlines()[0][:160]})") from None
        _connected = address
    return ray


@dataclass
class Placement:
    workers: int
    resources: dict  # per actor: num_cpus / num_gpus


def placement(resources: dict, common: BatchOptions, device: str, threads: int | None, jobs: int) -> Placement:
    """One actor per GPU when the cluster has GPUs (and the device allows them), else CPU actors of
    `--threads` cores each (default 1); `--workers` caps the count."""
    gpus = int(resources.get("GPU", 0))
    cores = max(1, threads or 1)
    if gpus and device != "cpu":
        place = Placement(gpus, {"num_gpus": 1, "num_cpus": cores})
    else:
        place = Placement(max(1, int(resources.get("CPU", 1)) // cores), {"num_cpus": cores})
    place.workers = max(1, min(common.workers or place.workers, jobs))
    return place


class Worker:
    """The actor: the command's work, prepared once (models loaded), then one run_job per call."""

    def __init__(self, work, common: BatchOptions, task: str, read, cwd: str, threads: int) -> None:
        if os.path.isdir(cwd):
            os.chdir(cwd)  # relative inputs and outputs mean what they meant to the driver
        if getattr(work.common, "threads", 0) is None:
            work.common.threads = threads  # the cores Ray gave this actor, not every core of its node
        self.work, self.common, self.task, self.read = work, common, task, read
        self.rep = RecordingReporter(common.quiet, common.json)
        self.broken: str | None = None
        try:
            work.prepare(self.rep)
        except BaseException as e:  # noqa: BLE001 - usage errors and exits included: report, do not die
            errors = [str(p) for k, p in self.rep.take() if k == "error"]
            self.broken = errors[0] if errors else f"{type(e).__name__}: {e}"
        self.rep.take()  # the driver already said what preparing says

    def run(self, job: Job) -> tuple[bool, list]:
        if self.broken:
            return failure(job, self.task, f"worker on {os.uname().nodename} could not start: {self.broken}")
        ok = run_job(job, self.common, self.task, self.work, self.rep, self.read)
        return ok, self.rep.take()


def failure(job: Job, task: str, msg: str) -> tuple[bool, list]:
    record = {"input": job.label, "output": "-" if job.output is None else str(job.output), "task": task}
    return False, [("error", f"{job.label}: {msg}"), ("result", {**record, "status": "error", "error": msg})]


def run_jobs_ray(jobs: list[Job], common: BatchOptions, task: str, work, rep: Reporter, read=None) -> int:
    """batch.run_jobs on a cluster: results replayed in input order; 0 when every file went well."""
    ray = connect(common.ray)
    results: list[tuple[bool, list] | None] = [None] * len(jobs)
    remote = []
    for i, job in enumerate(jobs):
        if needs_work(job, common):
            remote.append(i)
        else:  # a missing input or an existing output: decided here, no worker needed
            local = RecordingReporter(common.quiet, common.json)
            results[i] = (run_job(job, common, task, None, local, read), local.take())
    actors = []
    if remote:
        device, threads = getattr(common, "device", "auto"), getattr(common, "threads", None)
        place = placement(ray.cluster_resources(), common, device, threads, len(remote))
        actor_cls = ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS)(Worker).options(**place.resources)
        cores = int(place.resources["num_cpus"])
        actors = [actor_cls.remote(work, common, task, read, os.getcwd(), cores) for _ in range(place.workers)]
        rep.info(f"{len(remote)} files on {place.workers} Ray workers ({place.resources})")
    queue, pending, free = list(remote), {}, list(actors)
    emitted = failed = 0
    with rep.files(len(jobs), task):
        while emitted < len(jobs):
            while free and queue:
                actor, i = free.pop(), queue.pop(0)
                pending[actor.run.remote(jobs[i])] = (i, actor)
            while emitted < len(jobs) and results[emitted] is not None:
                ok, calls = results[emitted]
                replay(rep, calls)
                failed += not ok
                rep.advance_file()
                emitted += 1
            if not pending:
                for i in queue:  # every worker is gone
                    results[i] = failure(jobs[i], task, "no Ray worker left to process it")
                queue = []
                continue
            done, _ = ray.wait(list(pending), num_returns=1)
            i, actor = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
                free.append(actor)
            except ray.exceptions.RayActorError as e:  # restarts used up: this worker is gone
                results[i] = failure(jobs[i], task, f"Ray worker died ({str(e).splitlines()[0][:120]})")
            except ray.exceptions.RayError as e:
                results[i] = failure(jobs[i], task, f"Ray error {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                free.append(actor)
    for actor in actors:
        ray.kill(actor)
    return batch_status(rep, failed, len(jobs))
