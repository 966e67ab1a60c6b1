"""--ray on a real local Ray cluster: the same bytes, messages and promises as a local batch."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgdiff.io import is_temp_name
from tests.conftest import EXAMPLES, cli, tiny_checkpoint

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'imgdiff[ray]')")


@pytest.fixture(scope="module")
def cluster():
    """A head on this machine, 2 CPUs, a small object store; the CLI joins it (--ray local reuses it)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=80 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Six small noisy photos-like images, one unreadable file."""
    root = tmp_path_factory.mktemp("ray")
    src = root / "in"
    src.mkdir()
    photo = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB")).astype(np.float64)
    rng = np.random.default_rng(0)
    for i in range(6):
        crop = photo[i * 7 : i * 7 + 48, i * 11 : i * 11 + 64]
        Image.fromarray(np.clip(crop + rng.normal(0, 12, crop.shape), 0, 255).round().astype(np.uint8)).save(
            src / f"p{i}.png"
        )
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    tiny_checkpoint(root / "denoise.safetensors")
    tiny_checkpoint(root / "generate.safetensors", "generate")
    return root


def run_both(runner, folder: Path, tmp_path: Path, *args: str) -> tuple[Path, Path, list, list]:
    """The same command locally and on the cluster, each into its own folder."""
    outs, records = [], []
    for name, extra in (("local", ()), ("ray", ("--ray", "local", "--workers", "2"))):
        out = tmp_path / name
        r = cli(runner, *args, "-o", str(out), "--threads", "1", "--json", *extra)
        outs.append(out)
        records.append([json.loads(line) for line in r.stdout.splitlines()])
        assert r.exit_code in (0, 1), r.stderr
    return outs[0], outs[1], records[0], records[1]


def files(folder: Path) -> list[Path]:
    """What a user sees: a killed worker may leave a write_atomic temp, never a partial image."""
    return sorted(p for p in folder.iterdir() if not is_temp_name(p.name))


def same_files(a: Path, b: Path) -> list[str]:
    names = [p.name for p in files(a)]
    assert names == [p.name for p in files(b)]
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    return names


def without_time(records: list) -> list:
    return [{k: v for k, v in r.items() if k not in ("seconds", "output")} for r in records]


def test_denoise_on_the_cluster_matches_the_local_run(cluster, runner, folder, tmp_path):
    model = str(folder / "denoise.safetensors")
    local, remote, lrec, rrec = run_both(runner, folder, tmp_path, "denoise", str(folder / "in"), "--model", model)
    assert same_files(local, remote) == [f"p{i}.png" for i in range(6)]  # pixels and metadata
    assert without_time(lrec) == without_time(rrec)  # results in input order, the broken file included
    assert [r["status"] for r in rrec].count("error") == 1 and rrec[0]["input"].endswith("broken.png")


def test_generate_and_stylize_on_the_cluster_match_the_local_run(cluster, runner, folder, tmp_path):
    gen = str(folder / "generate.safetensors")
    local, remote, _, rrec = run_both(runner, folder, tmp_path / "g", "generate", "--num", "3", "--model", gen)
    assert len(same_files(local, remote)) == 3 and {r["seed"] for r in rrec} == {0, 1, 2}
    style = tmp_path / "style.png"
    Image.fromarray(np.asarray(Image.open(EXAMPLES / "style.png").convert("RGB"))[:40, :40]).save(style)
    os.environ["IMGDIFF_CACHE"] = str(tmp_path / "cache")
    try:
        args = ("stylize", str(folder / "in" / "p0.png"), str(folder / "in" / "p1.png"), "--style", str(style))
        args += ("--model", gen, "--style-steps", "2", "--steps", "2")
        local, remote, _, _ = run_both(runner, folder, tmp_path / "s", *args)
    finally:
        del os.environ["IMGDIFF_CACHE"]
    assert len(same_files(local, remote)) == 2  # the style learnt on the driver travelled to the workers


def test_existing_outputs_are_kept_and_skip_existing_resumes(cluster, runner, folder, tmp_path):
    model = str(folder / "denoise.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    (out / "p2.png").write_bytes(b"the user's own file")
    args = ["denoise", str(folder / "in"), "-o", str(out), "--model", model, "--ray", "local", "--threads", "1"]
    r = cli(runner, *args)
    assert r.exit_code == 1 and "p2.png already exists" in r.stderr and "broken.png" in r.stderr
    assert (out / "p2.png").read_bytes() == b"the user's own file"
    assert len(list(out.glob("p*.png"))) == 6
    r = cli(runner, *args, "--skip-existing", "--json")
    statuses = {
        json.loads(line)["input"].rsplit("/", 1)[-1]: json.loads(line)["status"] for line in r.stdout.splitlines()
    }
    assert statuses == {"broken.png": "error", **{f"p{i}.png": "skipped" for i in range(6)}}


def test_stdin_stdout_and_a_missing_extra_are_usage_errors(cluster, runner, folder, tmp_path, monkeypatch):
    r = cli(runner, "denoise", str(folder / "in" / "p0.png"), "-o", "-", "--ray", "local")
    assert r.exit_code == 2 and "--ray" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if not installed
    r = cli(runner, "denoise", str(folder / "in" / "p0.png"), "-o", str(tmp_path / "o.png"), "--ray", "local")
    assert r.exit_code == 2 and "imgdiff[ray]" in r.stderr


def worker_pids() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "cmdline").read_bytes().startswith(b"ray::Worker.run"):  # mid-file
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the workers through /proc")
def test_a_worker_killed_mid_run_leaves_no_partial_file(cluster, runner, folder, tmp_path):
    """SIGKILL one worker while the batch runs: it is restarted and its file retried; whatever
    is on disk is complete, and --skip-existing finishes the batch."""
    big = tmp_path / "big"
    big.mkdir()
    photo = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB"))
    for i in range(8):
        Image.fromarray(np.roll(np.tile(photo, (3, 3, 1)), i * 9, axis=1)).save(big / f"b{i}.png")
    model = str(folder / "denoise.safetensors")
    out = tmp_path / "out"
    args = ["denoise", str(big), "-o", str(out), "--model", model, "--sigma", "10", "--ray", "local", "--threads", "1"]
    killed: list[int] = []

    def kill_one():
        deadline = time.time() + 300
        while time.time() < deadline and not killed and not done.is_set():
            pids = worker_pids()
            if pids and out.is_dir() and files(out):  # a file is written and another is under way
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    done = threading.Event()
    t = threading.Thread(target=kill_one)
    t.start()
    r = cli(runner, *args)
    done.set()
    t.join()
    assert killed, "no worker was seen running"
    assert r.exit_code in (0, 1), r.stderr
    local = tmp_path / "local"
    cli(runner, "denoise", str(big), "-o", str(local), "--model", model, "--sigma", "10", "--threads", "1")
    for p in files(out):
        assert p.name.startswith("b") and p.read_bytes() == (local / p.name).read_bytes(), p.name
    r = cli(runner, *args, "--skip-existing")
    assert r.exit_code == 0, r.stderr
    assert same_files(local, out) == [f"b{i}.png" for i in range(8)]
