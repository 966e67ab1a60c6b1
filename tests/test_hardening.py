"""Promises of docs/RELIABILITY.md, each tried by a test that would break it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, cli, png_declaring, subprocess_cli, tiny_checkpoint

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def write_images(folder, photo, n, size=(256, 192)):
    folder.mkdir(parents=True, exist_ok=True)
    base = np.asarray(Image.fromarray(photo).resize(size))
    rng = np.random.default_rng(0)
    for i in range(n):
        noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"img{i:02d}.png")
    return folder


def batch_args(src, out, *extra: str) -> list[str]:
    """A single-threaded denoise batch as a shell would start it."""
    return [
        sys.executable,
        "-m",
        "imgdiff",
        "denoise",
        str(src),
        "-o",
        str(out),
        "--sigma",
        "20",
        "--threads",
        "1",
        *extra,
    ]


def complete_pngs(folder):
    """Every file is a fully decodable image and no temp file is left."""
    files = sorted(folder.iterdir())
    for f in files:
        assert not f.name.startswith("."), f"temp file left: {f.name}"
        with Image.open(f) as im:
            im.load()
    return files


def test_hostile_images_each_cost_one_line(runner, tmp_path, photo):
    src = tmp_path / "in"
    src.mkdir()
    (src / "bomb.png").write_bytes(png_declaring(60000, 60000))
    (src / "zero.png").write_bytes(png_declaring(0, 0))
    (src / "zero-bytes.png").write_bytes(b"")
    Image.fromarray(photo).save(src / "wrong-ext.jpg", format="PNG")
    Image.fromarray(photo[:1, :1]).save(src / "one.png")
    Image.fromarray(np.tile(photo[:1, :1], (1, 3000, 1))).save(src / "thin.png")
    frames = [Image.fromarray(photo), Image.fromarray(255 - photo)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x0112] = 77  # bogus orientation
    exif[0x010E] = "x" * 200_000  # huge description
    im.save(src / "weird-exif.png", exif=exif.tobytes())
    t = time.time()
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "out"), "--sigma", "10", "--json")
    assert time.time() - t < 60
    assert r.exit_code == 1
    status = {os.path.basename(x["input"]): x["status"] for x in map(__import__("json").loads, r.stdout.splitlines())}
    assert status == {
        "bomb.png": "error",
        "zero.png": "error",
        "zero-bytes.png": "error",
        "wrong-ext.jpg": "ok",
        "one.png": "ok",
        "thin.png": "ok",
        "anim.gif": "ok",
        "weird-exif.png": "ok",
    }
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 3 and all(any(n in ln for n in ("bomb", "zero")) for ln in errors)
    assert "animated" in r.stderr and "orientation" in r.stderr and "Traceback" not in r.stderr
    assert Image.open(tmp_path / "out" / "thin.png").size == (3000, 1)
    assert Image.open(tmp_path / "out" / "anim.png").size == (64, 48)


def test_file_names_cannot_break_lines_or_drive_the_terminal(runner, tmp_path, photo):
    """A name with a line break or an escape code still gets one stderr line per message, with the
    character written as an escape; the JSON record keeps the real name."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo).save(src / "two\nlines.png")
    (src / "red\x1b[31m.png").write_bytes(b"not an image")
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "no\nsuch" / "x.png"), "--sigma", "10", "--json")
    assert r.exit_code in (1, 2)
    lines = r.stderr.splitlines()
    assert lines and all(ln.startswith("imgdiff: ") for ln in lines), lines
    assert "\x1b" not in r.stderr
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "out"), "--sigma", "10", "--json")
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert all(ln.startswith("imgdiff: ") for ln in lines) and "\x1b" not in r.stderr
    assert any("red\\x1b[31m.png" in ln for ln in lines)
    records = {x["input"]: x["status"] for x in map(__import__("json").loads, r.stdout.splitlines())}
    assert records == {str(src / "two\nlines.png"): "ok", str(src / "red\x1b[31m.png"): "error"}
    assert (tmp_path / "out" / "two\nlines.png").is_file()


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_batch_leaves_only_complete_files_and_resumes(tmp_path, photo, sig, code):
    src = write_images(tmp_path / "in", photo, 16)
    out = tmp_path / "out"
    args = batch_args(src, out)
    proc = subprocess.Popen(args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline and not (out.exists() and any(p.suffix == ".png" for p in out.iterdir())):
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err.decode()
    done = complete_pngs(out)
    assert 1 <= len(done) < 16
    before = {f.name: f.read_bytes() for f in done}
    r = subprocess.run(args + ["--skip-existing"], env=ENV, cwd=ROOT, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    after = complete_pngs(out)
    assert len(after) == 16
    assert all((out / n).read_bytes() == b for n, b in before.items())


def test_concurrent_writers_never_corrupt(tmp_path, photo):
    src = write_images(tmp_path / "in", photo, 8, size=(128, 96))
    out = tmp_path / "out"
    args = batch_args(src, out, "--overwrite", "-q")
    procs = [subprocess.Popen(args, env=ENV, cwd=ROOT, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        p.wait(timeout=120)
        assert p.returncode == 0, p.stderr.read().decode()
    files = complete_pngs(out)
    assert len(files) == 8
    ref = tmp_path / "ref.png"
    assert subprocess_cli("denoise", str(src / "img03.png"), "-o", str(ref), "--sigma", "20").returncode == 0
    assert (out / "img03.png").read_bytes() == ref.read_bytes()


def test_no_clobber_race_between_two_writers(tmp_path, photo):
    src = write_images(tmp_path / "in", photo, 6, size=(64, 48))
    out = tmp_path / "out"
    args = batch_args(src, out, "-q", "--json")
    procs = [
        subprocess.Popen(args, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    records = [__import__("json").loads(line) for out_, _ in results for line in out_.decode().splitlines()]
    assert len(complete_pngs(out)) == 6
    for name in {os.path.basename(r["output"]) for r in records}:
        mine = [r for r in records if os.path.basename(r["output"]) == name]
        # every output was written by exactly one process; the other reported it existing, never replaced it
        assert sorted(r["status"] for r in mine) == ["error", "ok"], mine
        loser = next(r for r in mine if r["status"] == "error")
        assert "already exists" in loser["error"] or "appeared meanwhile" in loser["error"], loser
    for proc, (_, err) in zip(procs, results, strict=True):
        lost = err.decode().count("imgdiff: error:")
        assert proc.returncode == (1 if lost else 0)


def test_full_or_closed_stdout(tmp_path, noisy_png):
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "imgdiff", "denoise", str(noisy_png), "-o", "-", "--sigma", "20"],
            env=ENV,
            cwd=ROOT,
            stdout=full,
            stderr=subprocess.PIPE,
        )
    err = r.stderr.decode()
    assert r.returncode == 1 and "No space left" in err and "Traceback" not in err and "Exception" not in err
    p = subprocess.Popen(
        [sys.executable, "-m", "imgdiff", "denoise", "-", "-o", "-", "--sigma", "20"],
        env=ENV,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()  # the reader went away
    _, err = p.communicate(noisy_png.read_bytes(), timeout=60)
    assert p.returncode == 1 and b"stdout" in err and b"Traceback" not in err


def test_unwritable_targets_fail_cleanly(runner, tmp_path, noisy_png):
    before = noisy_png.read_bytes()
    r = cli(runner, "denoise", str(noisy_png), "-o", str(tmp_path / "missing" / "x.png"))
    assert r.exit_code == 1 and "does not exist" in r.stderr
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    r = cli(runner, "denoise", str(noisy_png), "-o", str(blocker / "sub") + "/")
    assert r.exit_code == 1 and "a file is in the way" in r.stderr
    r = cli(runner, "denoise", str(noisy_png), "-o", str(blocker / "x.png"))
    assert r.exit_code == 1 and "blocker" in r.stderr
    r = cli(runner, "denoise", str(noisy_png), "-o", "/proc/imgdiff-test.png")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert noisy_png.read_bytes() == before and blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in noisy_png.parent.iterdir()) == ["blocker", "noisy.png"]


@pytest.mark.parametrize(
    "cmd",
    [
        ["denoise", "--sigma", "20", "--steps", "1"],
        ["denoise", "--sigma", "20", "--steps", "3"],
        ["upscale", "--scale", "2", "--steps", "1"],
        ["upscale", "--scale", "2", "--steps", "3"],
    ],
)
def test_same_seed_same_pixels(runner, tmp_path, noisy_png, cmd):
    outs = []
    for i in range(2):
        o = tmp_path / f"o{i}.png"
        r = cli(runner, *cmd, str(noisy_png), "-o", str(o), "--seed", "11")
        assert r.exit_code == 0, r.stderr
        outs.append(np.asarray(Image.open(o)))
    assert np.array_equal(*outs)
    meta = Image.open(tmp_path / "o0.png").text["imgdiff"]
    assert '"seed": 11' in meta


def test_stdout_carries_only_the_image(noisy_png):
    r = subprocess_cli("denoise", "-", "-o", "-", "--sigma", "20", input=noisy_png.read_bytes())
    assert r.returncode == 0
    Image.open(io.BytesIO(r.stdout)).load()
    assert r.stdout.startswith(b"\x89PNG") and r.stdout.endswith(b"IEND\xaeB`\x82")


def peak_rss(args: list[str]) -> int:
    """Peak resident bytes of one imgdiff process (its own, via wait4)."""
    proc = subprocess.Popen(args, env=ENV, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()
    return usage.ru_maxrss * 1024


def test_memory_grows_with_pixels_only_through_image_buffers(tmp_path, photo):
    # model activations depend on the tile; what grows with the image is a few float buffers (a
    # tiny checkpoint: the weights and a tile's activations are the same at both sizes whatever the net)
    model = str(tiny_checkpoint(tmp_path / "tiny.safetensors"))
    rss = []
    for side in (512, 1536):
        src = write_images(tmp_path / f"in{side}", photo, 1, size=(side, side))
        args = batch_args(src, tmp_path / f"out{side}", "--tile", "256", "--ensemble", "1", "--model", model)
        rss.append(peak_rss(args))
    per_pixel = (rss[1] - rss[0]) / (1536**2 - 512**2)
    assert per_pixel < 160, f"{per_pixel:.0f} bytes per extra pixel"


def test_a_second_ray_address_is_refused_not_sent_to_the_first_cluster(monkeypatch):
    """One Ray connection per process: asking for another cluster must not silently reuse the first."""
    import types

    from imgdiff import cluster
    from imgdiff.errors import ImgdiffError

    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: bool(calls), init=lambda **kw: calls.append(kw["address"]))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(cluster, "_connected", None)
    assert cluster.connect("head-a:6379") is fake and calls == ["head-a:6379"]
    assert cluster.connect("head-a:6379") is fake and calls == ["head-a:6379"]  # the same one: reused
    with pytest.raises(ImgdiffError, match="already connected to --ray head-a:6379"):
        cluster.connect("head-b:6379")
    assert calls == ["head-a:6379"]
    # a connection the caller made itself (ray.init in their program) is used as it is
    monkeypatch.setattr(cluster, "_connected", None)
    assert cluster.connect("auto") is fake and calls == ["head-a:6379"]
