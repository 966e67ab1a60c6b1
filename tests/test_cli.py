"""The CLI contract, end to end with the shipped checkpoints on small real images."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from imgdiff.defaults import DENOISE_ENSEMBLE
from imgdiff.io import png_metadata
from tests.conftest import EXAMPLES, cli, subprocess_cli


def psnr(a, b):
    return 10 * np.log10(255**2 / np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))


def test_version_and_help(runner):
    r = cli(runner, "--version")
    assert r.exit_code == 0 and r.stdout.startswith("imgdiff ")
    assert cli(runner, "denoise", "--help").exit_code == 0


def test_denoise_next_to_input_with_metadata(runner, noisy_png, photo):
    r = cli(runner, "denoise", str(noisy_png), "--sigma", "20")
    assert r.exit_code == 0, r.stderr
    out = noisy_png.with_name("noisy.denoised.png")
    assert out.exists() and r.stdout == ""
    assert psnr(Image.open(out), photo) > psnr(Image.open(noisy_png), photo) + 3
    meta = json.loads(png_metadata(out)["imgdiff"])
    assert meta["task"] == "denoise" and meta["sigma"] == 20 and meta["steps"] == 1 and len(meta["model_sha256"]) == 64
    assert meta["device"] == "cpu" and meta["precision"] in ("float32", "bfloat16")
    assert meta["ensemble"] == DENOISE_ENSEMBLE


def test_auto_sigma_and_json_lines(runner, noisy_png):
    r = cli(runner, "denoise", str(noisy_png), "-o", str(noisy_png.with_name("o.png")), "--json")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["status"] == "ok" and 10 < rec["sigma"] < 30


def test_an_estimate_above_the_models_range_denoises_at_its_top(runner, tmp_path):
    """Pure noise reads ~85 on the 0..255 scale: the estimate is clamped (with a warning), where a told
    --sigma above the range is still refused."""
    from tests.conftest import tiny_checkpoint

    model = tiny_checkpoint(tmp_path / "d.safetensors")
    src = tmp_path / "static.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(src)
    args = ("denoise", str(src), "--mode", "gaussian", "--model", str(model), "--json")
    r = cli(runner, *args, "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["sigma"] == 75 and "is above" in r.stderr and "denoising at 75" in r.stderr
    assert Image.open(tmp_path / "o.png").size == (50, 40)
    r = cli(runner, *args, "-o", str(tmp_path / "p.png"), "--sigma", "90")
    assert r.exit_code == 2 and not (tmp_path / "p.png").exists()


def test_no_clobber_overwrite_and_skip(runner, noisy_png):
    out = noisy_png.with_name("out.png")
    out.write_bytes(b"precious")
    r = cli(runner, "denoise", str(noisy_png), "-o", str(out), "--sigma", "20")
    assert r.exit_code == 1 and "already exists" in r.stderr and out.read_bytes() == b"precious"
    assert cli(runner, "denoise", str(noisy_png), "-o", str(out), "--skip-existing").exit_code == 0
    assert out.read_bytes() == b"precious"
    assert cli(runner, "denoise", str(noisy_png), "-o", str(out), "--overwrite", "--sigma", "20").exit_code == 0
    assert Image.open(out).size == (64, 48)


def test_never_writes_onto_the_input(runner, noisy_png):
    before = noisy_png.read_bytes()
    r = cli(runner, "denoise", str(noisy_png), "-o", str(noisy_png), "--overwrite")
    assert r.exit_code == 1 and noisy_png.read_bytes() == before


def test_folder_batch_keeps_relative_paths_and_survives_bad_files(runner, tmp_path, noisy_png):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(noisy_png, src / "a.png")
    shutil.copy(noisy_png, src / "sub" / "b.jpg")
    (src / "empty.png").write_bytes(b"")
    (src / "notes.png").write_text("not an image")
    data = noisy_png.read_bytes()
    (src / "cut.png").write_bytes(data[: len(data) // 3])
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "out"), "--recursive", "--sigma", "20", "--json")
    assert r.exit_code == 1
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(x["status"] for x in recs) == ["error", "error", "error", "ok", "ok"]
    assert (tmp_path / "out" / "a.png").exists() and (tmp_path / "out" / "sub" / "b.jpg").exists()
    errs = r.stderr.strip().splitlines()
    for name in ("empty.png", "notes.png", "cut.png"):
        assert sum(name in line for line in errs) == 1
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.png", "b.jpg"]


def test_suffix_and_glob(runner, tmp_path, noisy_png):
    for n in ("x1.png", "x2.png"):
        shutil.copy(noisy_png, tmp_path / n)
    r = cli(
        runner, "denoise", str(tmp_path / "x*.png"), "-o", str(tmp_path / "o"), "--suffix", "_clean", "--sigma", "20"
    )
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x1_clean.png", "x2_clean.png"]
    for bad in ("/x", "../x", "a\0b"):  # a suffix ends a file name: no path, no NUL, nothing written
        r = cli(runner, "denoise", str(tmp_path / "x1.png"), "--suffix", bad, "--sigma", "20")
        assert r.exit_code == 2 and "--suffix" in r.stderr and "internal error" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.png", "o", "x1.png", "x2.png"]


def test_missing_input_and_usage_errors(runner, tmp_path):
    r = cli(runner, "denoise", str(tmp_path / "nope.png"))
    assert r.exit_code == 1 and "nope.png" in r.stderr
    assert cli(runner, "denoise", "--sigma", "abc", str(tmp_path)).exit_code == 2
    assert cli(runner, "upscale", "--scale", "3", "x.png").exit_code == 2
    r = cli(runner, "denoise", "--ensemble", "9", "x.png")
    assert r.exit_code == 2 and "--ensemble 9" in r.stderr
    r = cli(runner, "denoise", "x.png", "--device", "cuda:7")
    assert r.exit_code == 2 and "cuda" in r.stderr.lower()


@pytest.mark.parametrize(
    "args, listed",
    [
        (["denoise", "x.png", "--mode", "soft"], "'auto', 'gaussian', 'real'"),
        (["upscale", "x.png", "--scale", "3"], "'2', '4'"),
        (["upscale", "x.png", "--mode", "gaussian"], "'bicubic', 'real'"),
        (["denoise", "x.png", "--precision", "fp8"], "'auto', 'fp32', 'fp16', 'bf16'"),
        (["train", "--task", "deblur", "--data", ".", "--out", "o.safetensors"], "'upscale-x4-real', 'generate'"),
        (["eval", ".", "--task", "generate"], "'denoise', 'upscale-x2', 'upscale-x4'"),
    ],
)
def test_choices_are_typed_and_refused_in_one_line(runner, args, listed):
    r = cli(runner, *args)
    assert r.exit_code == 2 and r.stdout == ""
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("imgdiff: error: Invalid value for") and listed in line
    assert "Value error" not in line
    if args[0] == "upscale":
        assert (
            "<2|4>" in cli(runner, "upscale", "--help").stdout
            and "<bicubic|real>" in cli(runner, "upscale", "--help").stdout
        )


def test_the_cli_offers_every_training_task_and_no_other():
    from imgdiff.defaults import TRAIN_TASKS
    from imgdiff.tasks import RESTORE_TASKS, default_config

    assert set(TRAIN_TASKS) == {"denoise", "generate", *RESTORE_TASKS}
    for task in TRAIN_TASKS:
        assert default_config(task)["architecture"]


def test_pipe_stdin_to_stdout(noisy_png):
    r = subprocess_cli("denoise", "-", "-o", "-", "--sigma", "20", input=noisy_png.read_bytes())
    assert r.returncode == 0, r.stderr
    im = Image.open(io.BytesIO(r.stdout))
    assert im.format == "PNG" and im.size == (64, 48)


def test_upscale_sizes_and_alpha(runner, tmp_path, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    p = tmp_path / "small.png"
    Image.fromarray(rgba, "RGBA").save(p)
    for scale in (2, 4):
        r = cli(runner, "upscale", str(p), "--scale", str(scale))
        assert r.exit_code == 0, r.stderr
        out = Image.open(tmp_path / f"small.x{scale}.png")
        assert out.size == (64 * scale, 48 * scale) and out.mode == "RGBA"
        assert abs(int(np.asarray(out)[..., 3].mean()) - 200) <= 1


def test_upscale_beats_bicubic_on_the_example(runner, tmp_path):
    r = cli(runner, "upscale", str(EXAMPLES / "small.png"), "-o", str(tmp_path / "up.png"))
    assert r.exit_code == 0, r.stderr
    clean = Image.open(EXAMPLES / "clean.png")
    bic = Image.open(EXAMPLES / "small.png").resize(clean.size, Image.BICUBIC)
    assert psnr(Image.open(tmp_path / "up.png"), clean) > psnr(bic, clean) + 0.3


def test_generate_is_seeded_numbered_and_tileable(runner, tmp_path):
    r = cli(runner, "generate", "--num", "2", "-o", str(tmp_path / "g"), "--steps", "6", "--seed", "5")
    assert r.exit_code == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == ["generated-0005.png", "generated-0006.png"]
    a = np.asarray(Image.open(tmp_path / "g" / names[0]))
    r = cli(runner, "generate", "-o", str(tmp_path / "again.png"), "--steps", "6", "--seed", "5")
    assert r.exit_code == 0 and np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), a)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "g" / names[1])), a)
    r = cli(runner, "generate", "-o", str(tmp_path / "t.png"), "--size", "96x64", "--tileable", "--steps", "6")
    assert r.exit_code == 0, r.stderr
    t = np.asarray(Image.open(tmp_path / "t.png")).astype(float)
    assert t.shape == (64, 96, 3)
    # wrap-around seam is no rougher than the image's own neighbouring columns
    inner = np.abs(np.diff(t, axis=1)).mean()
    assert np.abs(t[:, 0] - t[:, -1]).mean() < 2.5 * inner
    assert cli(runner, "generate", "-o", str(tmp_path / "bad.png"), "--size", "50").exit_code == 2


def test_stylize_learns_then_uses_the_cache(runner, tmp_path, noisy_png):
    from tests.conftest import tiny_checkpoint

    style = EXAMPLES / "style.png"
    base = tiny_checkpoint(tmp_path / "tiny-generate.safetensors", "generate")  # the caching, not the art
    args = ["stylize", str(noisy_png), "--style", str(style), "--style-steps", "3", "--steps", "3", "--json"]
    args += ["--model", str(base)]
    r1 = cli(runner, *args, "-o", str(tmp_path / "s1.png"), "--save-style", str(tmp_path / "style.safetensors"))
    assert r1.exit_code == 0, r1.stderr
    assert json.loads(r1.stdout)["style_cached"] is False
    r2 = cli(runner, *args, "-o", str(tmp_path / "s2.png"))
    assert json.loads(r2.stdout)["style_cached"] is True
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s1.png")), np.asarray(Image.open(tmp_path / "s2.png")))
    r3 = cli(
        runner,
        "stylize",
        str(noisy_png),
        "--style",
        str(tmp_path / "style.safetensors"),
        "--steps",
        "3",
        "-o",
        str(tmp_path / "s3.png"),
    )
    assert r3.exit_code == 0 and np.array_equal(
        np.asarray(Image.open(tmp_path / "s3.png")), np.asarray(Image.open(tmp_path / "s1.png"))
    )


def test_multi_step_denoise_is_a_different_but_faithful_sample(runner, noisy_png, photo, tmp_path):
    outs = {}
    for steps in (1, 4):
        o = tmp_path / f"s{steps}.png"
        assert (
            cli(runner, "denoise", str(noisy_png), "-o", str(o), "--sigma", "20", "--steps", str(steps)).exit_code == 0
        )
        outs[steps] = np.asarray(Image.open(o))
    assert not np.array_equal(outs[1], outs[4])
    assert psnr(outs[4], photo) > psnr(Image.open(noisy_png), photo)


def test_models_commands(runner):
    r = cli(runner, "models", "list")
    assert r.exit_code == 0 and "upscale-x4" in r.stdout
    r = cli(runner, "models", "info", "denoise")
    assert json.loads(r.stdout)["task"] == "denoise"
    assert cli(runner, "models", "verify").exit_code == 0
    assert cli(runner, "models", "info", "nonexistent").exit_code == 1


def test_detail_gain_is_recorded_and_defaults_per_noise_kind(runner, tmp_path, noisy_png):
    """White noise keeps the posterior mean unless asked; camera noise gets the gain that follows the
    noise removed (recorded beside it); the gain used is in the JSON line and the PNG metadata, and a
    larger gain gives more fine detail."""
    import cv2

    from imgdiff.detail import camera_gain

    def fine(path) -> float:
        y = np.asarray(Image.open(path).convert("L"), np.float64)
        return float(np.mean((y - cv2.GaussianBlur(y, (0, 0), 1.0)) ** 2))

    outs = {}
    for args, gain in (
        (["--sigma", "20"], 1.0),
        (["--sigma", "20", "--detail", "1.8"], 1.8),
        (["--mode", "real", "--detail", "1.3"], 1.3),
        (["--mode", "real"], None),
    ):
        o = tmp_path / f"d{gain}.png"
        r = cli(runner, "denoise", str(noisy_png), *args, "-o", str(o), "--json")
        assert r.exit_code == 0, r.stderr
        line, meta = json.loads(r.stdout), json.loads(png_metadata(o)["imgdiff"])
        if gain is None:  # the default: a function of what was removed, which the tiny model makes large
            assert line["noise_removed"] > 1 and meta["noise_removed"] == line["noise_removed"]
            gain = camera_gain(line["noise_removed"])
            assert 1 < gain <= 2
        assert line["detail"] == gain and meta["detail"] == gain
        outs[gain] = o
    assert fine(outs[1.8]) > 1.5 * fine(outs[1.0])


def test_camera_gain_follows_the_noise_removed():
    from imgdiff.defaults import REAL_DETAIL_FIT, REAL_DETAIL_MAX, REAL_DETAIL_RAMP
    from imgdiff.detail import camera_gain, removed_std

    rng = np.random.default_rng(1)
    clean = rng.random((300, 40, 3), dtype=np.float32)
    assert removed_std(clean, clean) == 0 and camera_gain(0.0) == 1
    noise = rng.standard_normal(clean.shape, np.float32)
    stds = [removed_std(clean + np.float32(s / 255) * noise, clean) for s in (5, 10, 20)]
    assert np.allclose(stds, (5, 10, 20), rtol=0.02)  # over row bands: 300 rows are two of them
    gains = [camera_gain(s) for s in stds]
    assert 1.3 < gains[0] < gains[1] < gains[2] < REAL_DETAIL_MAX
    assert camera_gain(1e6) == camera_gain(float("inf")) == REAL_DETAIL_MAX and camera_gain(float("nan")) == 1
    # a clean photo's few tenths (JPEG, the model's own error) get no gain; the fit's comes in by s = 3
    lo, hi = REAL_DETAIL_RAMP
    ramp = [camera_gain(s) for s in (0.5, lo, (lo + hi) / 2, hi, hi + 0.1)]
    assert ramp[0] == ramp[1] == 1 < ramp[2] < ramp[3] < ramp[4]
    assert ramp[2] - 1 == pytest.approx(
        (camera_gain(hi) - 1) / 2 * ((lo + hi) / 2 / hi) ** REAL_DETAIL_FIT[1], abs=2e-3
    )


def test_restore_detail_keeps_shape_range_alpha_and_mean():
    from imgdiff.detail import restore_detail
    from imgdiff.io import ImageData

    rng = np.random.default_rng(0)
    for channels in (1, 3):
        img = ImageData(rng.random((20, 30, channels), dtype=np.float32), alpha=np.ones((20, 30), np.float32))
        assert restore_detail(img, 1.0) is img
        for gain in (0.0, 2.5):
            out = restore_detail(img, gain)
            assert out.pixels.shape == img.pixels.shape and out.pixels.dtype == np.float32
            assert out.pixels.min() >= 0 and out.pixels.max() <= 1 and out.alpha is img.alpha
        smooth = restore_detail(img, 0.0).pixels
        assert abs(smooth.mean() - img.pixels.mean()) < 0.01 and smooth.std() < img.pixels.std() / 2


def test_real_mode_uses_a_matching_restore_model(runner, tmp_path, noisy_png):
    from tests.conftest import tiny_checkpoint

    real = tiny_checkpoint(tmp_path / "real.safetensors", "denoise-real")
    o = tmp_path / "r.png"
    r = cli(runner, "denoise", str(noisy_png), "--mode", "real", "--model", str(real), "-o", str(o), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["mode"] == "real" and Image.open(o).size == (64, 48)
    r = cli(runner, "denoise", str(noisy_png), "--mode", "real", "--model", "upscale-x2", "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2 and "cannot do x1 real" in r.stderr
    assert cli(runner, "denoise", str(noisy_png), "--mode", "real", "--sigma", "5").exit_code == 2
    assert cli(runner, "upscale", str(noisy_png), "--mode", "fancy").exit_code == 2


def test_upscale_real_mode_uses_the_shipped_real_model(runner, tmp_path, noisy_png):
    o = tmp_path / "big.png"
    r = cli(runner, "upscale", str(noisy_png), "--scale", "4", "--mode", "real", "-o", str(o), "--json")
    assert r.exit_code == 0, r.stderr
    assert Image.open(o).size == (256, 192) and json.loads(r.stdout)["scale"] == 4
    assert '"model": "upscale-x4-real"' in Image.open(o).text["imgdiff"]
    r = cli(runner, "upscale", str(noisy_png), "--scale", "2", "--mode", "real", "-o", str(tmp_path / "x2.png"))
    assert r.exit_code == 2 and "upscale-x2-real" in r.stderr


def test_an_internal_error_costs_one_file_not_the_batch(runner, tmp_path, noisy_png, monkeypatch):
    import imgdiff.pipelines.denoise as den

    real = den.denoise_image
    calls = []

    def flaky(img, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated bug\nsecond line")
        return real(img, *a, **k)

    monkeypatch.setattr(den, "denoise_image", flaky)
    src = tmp_path / "in"
    src.mkdir()
    for n in ("a.png", "b.png"):
        shutil.copy(noisy_png, src / n)
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "out"), "--sigma", "20")
    assert r.exit_code == 1
    assert "internal error RuntimeError: simulated bug" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.png"]


def test_every_package_is_in_the_wheel():
    """A non-editable install ships only the packages pyproject lists: a new subpackage left out
    (imgdiff/cli was) breaks the console script for every user while editable installs still work."""
    import pytest

    tomllib = pytest.importorskip("tomllib")
    from tests.conftest import ROOT

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "imgdiff").rglob("__init__.py")}
    assert on_disk - listed == set()
