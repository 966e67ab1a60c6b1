"""Promises a hostile run broke once (issue 13): each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from imgdiff import hub
from imgdiff.io import png_metadata
from tests.conftest import EXAMPLES, ROOT, cli, subprocess_cli, tiny_checkpoint

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def no_model_loads(monkeypatch):
    """A usage error must be found before any checkpoint is read."""

    import imgdiff.train.style  # noqa: F401  (binds the real loader before it is replaced)

    def refuse(*a, **kw):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(hub, "load", refuse)


def one_error_line(r, code: int = 2, *needles: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("imgdiff: error:"), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e308", "-5", "99999999999999999999"]
NUMERIC_OPTIONS = [
    (["denoise", "x.png"], "--sigma"),
    (["denoise", "x.png"], "--steps"),
    (["denoise", "x.png"], "--seed"),
    (["denoise", "x.png"], "--tile"),
    (["denoise", "x.png"], "--tile-overlap"),
    (["denoise", "x.png"], "--threads"),
    (["denoise", "x.png"], "--max-pixels"),
    (["denoise", "x.png"], "--ensemble"),
    (["denoise", "x.png"], "--detail"),
    (["upscale", "x.png"], "--scale"),
    (["stylize", "x.png", "--style", "s.png"], "--strength"),
    (["stylize", "x.png", "--style", "s.png"], "--style-steps"),
    (["generate", "-o", "g"], "--num"),
    (["generate", "-o", "g"], "--size"),
    (["eval", "."], "--sigma"),
    (["train", "--task", "denoise", "--data", ".", "--out", "o.safetensors"], "--lr"),
    (["train", "--task", "denoise", "--data", ".", "--out", "o.safetensors"], "--minutes"),
]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("cmd,option", NUMERIC_OPTIONS, ids=[f"{c[0]}{o}" for c, o in NUMERIC_OPTIONS])
def test_every_numeric_option_refuses_non_finite_and_out_of_range(runner, no_model_loads, cmd, option, value):
    r = cli(runner, *cmd, option, value)
    one_error_line(r, 2, option if option != "--size" else "--size")


def test_nan_sigma_never_reaches_the_model(runner, no_model_loads, noisy_png):
    r = cli(runner, "denoise", str(noisy_png), "--sigma", "nan", "--json")
    one_error_line(r, 2, "--sigma")
    assert r.stdout == "" and not noisy_png.with_name("noisy.denoised.png").exists()


def test_usage_errors_are_one_line_not_a_panel(runner):
    for args in (["denoise", "x.png", "--steps", "0"], ["denoise", "--bogus"], ["denoise"], ["upscale", "--scale"]):
        line = one_error_line(cli(runner, *args), 2)
        assert "╭" not in line and "│" not in line


def test_unknown_model_is_a_usage_error_before_any_work(runner, noisy_png):
    r = cli(runner, "denoise", str(noisy_png), "--model", "no-such-model", "--sigma", "10")
    one_error_line(r, 2, "no-such-model")
    assert not noisy_png.with_name("noisy.denoised.png").exists()


def test_max_pixels_message_names_real_numbers(runner, noisy_png):
    r = cli(runner, "denoise", str(noisy_png), "--max-pixels", "100", "--sigma", "10")
    assert r.exit_code == 1
    assert "0 megapixels" not in r.stderr and "3072" in r.stderr and "100" in r.stderr


def test_seed_range_is_checked(runner, noisy_png):
    one_error_line(cli(runner, "denoise", str(noisy_png), "--seed", str(2**44)), 2, "--seed")
    r = cli(runner, "denoise", str(noisy_png), "--seed", str(2**32 - 1), "--sigma", "10", "--steps", "2")
    assert r.exit_code == 0, r.stderr


def test_huge_thread_counts_are_refused_not_a_segfault(noisy_png):
    r = subprocess_cli("denoise", str(noisy_png), "--threads", "100000", "--sigma", "10")
    err = r.stderr.decode()
    assert r.returncode == 2 and err.startswith("imgdiff: error:") and "--threads" in err and len(err.splitlines()) == 1


def make_pngs(folder, photo, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(photo).save(folder / n)
    return folder


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_reruns_do_not_process_their_own_outputs(runner, tmp_path, photo):
    small = np.asarray(Image.fromarray(photo).resize((32, 24)))
    u = make_pngs(tmp_path / "u", small, ["a.png"])
    for _ in range(3):
        r = cli(runner, "upscale", str(u), "--skip-existing", "--scale", "2")
        assert r.exit_code == 0, r.stderr
    assert tree(u) == ["a.png", "a.x2.png"]

    d = make_pngs(tmp_path / "d", photo, ["a.png"])
    for _ in range(3):
        assert (
            cli(
                runner,
                "denoise",
                str(d),
                "-o",
                str(d),
                "--suffix",
                "_dn",
                "--sigma",
                "5",
                "--ensemble",
                "1",
                "--skip-existing",
            ).exit_code
            == 0
        )
    assert tree(d) == ["a.png", "a_dn.png"]

    n = make_pngs(tmp_path / "n", photo, ["a.png"])
    for _ in range(3):
        args = ["denoise", str(n), "-o", str(n / "clean"), "-r", "--sigma", "5", "--ensemble", "1", "--skip-existing"]
        assert cli(runner, *args).exit_code == 0
    assert tree(n) == ["a.png", "clean/a.png"]

    # a renamed output is still recognised by its provenance chunk; naming it alone still processes it
    (n / "clean" / "a.png").rename(n / "renamed.png")
    r = cli(runner, "denoise", str(n), "-o", str(tmp_path / "again"), "--sigma", "5", "--ensemble", "1")
    assert r.exit_code == 0 and tree(tmp_path / "again") == ["a.png"]
    r = cli(runner, "denoise", str(n / "renamed.png"), "--sigma", "5", "--ensemble", "1")
    assert r.exit_code == 0 and (n / "renamed.denoised.png").exists()


def test_recursive_globs_do_not_follow_symlink_loops(runner, tmp_path, photo):
    src = make_pngs(tmp_path / "in", photo, ["a.png"])
    make_pngs(src / "sub", photo, ["b.png", "c.png"])
    (src / "sub" / "loop").symlink_to("..")
    r = cli(
        runner,
        "denoise",
        str(src / "**" / "*.png"),
        "-o",
        str(tmp_path / "out"),
        "-r",
        "--sigma",
        "5",
        "--ensemble",
        "1",
    )
    assert r.exit_code == 0, r.stderr
    assert tree(tmp_path / "out") == ["a.png", "sub/b.png", "sub/c.png"]
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "out2"), "-r", "--sigma", "5", "--ensemble", "1")
    assert tree(tmp_path / "out2") == ["a.png", "sub/b.png", "sub/c.png"]


def test_stdout_never_mixes_image_bytes_and_json(runner, noisy_png, no_model_loads):
    one_error_line(cli(runner, "denoise", "-", "--json", input=noisy_png.read_bytes()), 2, "--json")
    one_error_line(cli(runner, "generate", "-o", "-", "--json"), 2, "--json")


def test_unsupported_output_extension_is_an_error_not_a_folder(runner, tmp_path, noisy_png, no_model_loads):
    one_error_line(cli(runner, "denoise", str(noisy_png), "-o", str(tmp_path / "out.gif")), 2, ".gif")
    one_error_line(cli(runner, "generate", "-o", str(tmp_path / "g.gif")), 2, ".gif")
    assert not (tmp_path / "out.gif").exists() and not (tmp_path / "g.gif").exists()
    second = tmp_path / "second.png"
    second.write_bytes(noisy_png.read_bytes())
    one_error_line(cli(runner, "denoise", str(noisy_png), str(second), "-o", str(tmp_path / "o.png")), 2, "folder")


def test_save_style_never_replaces_an_input(runner, tmp_path, noisy_png, no_model_loads):
    style = tmp_path / "s.png"
    style.write_bytes((EXAMPLES / "style.png").read_bytes())
    before = {p: p.read_bytes() for p in (noisy_png, style)}
    for target in (noisy_png, style):
        r = cli(runner, "stylize", str(noisy_png), "--style", str(style), "--save-style", str(target), "--overwrite")
        one_error_line(r, 2, "--save-style")
    r = cli(runner, "stylize", str(noisy_png), "--style", str(style), "-o", str(style), "--overwrite")
    assert r.exit_code == 1 and "would overwrite" in r.stderr
    saved = tmp_path / "saved.safetensors"
    saved.write_bytes(b"a style the user keeps")
    r = cli(runner, "stylize", str(noisy_png), "--style", str(saved), "--save-style", str(saved), "--overwrite")
    one_error_line(r, 2, "would overwrite")
    before[saved] = saved.read_bytes()
    assert all(p.read_bytes() == b for p, b in before.items())


@pytest.fixture
def tiny_generate(tmp_path):
    return tiny_checkpoint(tmp_path / "tiny-generate.safetensors", "generate")


def test_stylize_with_a_tiny_style_image(runner, tmp_path, noisy_png, tiny_generate):
    style = tmp_path / "tiny.png"
    Image.fromarray(np.asarray(Image.open(EXAMPLES / "style.png").convert("RGB"))[:20, :30]).save(style)
    args = ["stylize", str(noisy_png), "--style", str(style), "--model", str(tiny_generate), "--style-steps", "2"]
    r = cli(runner, *args, "--steps", "2", "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 0, r.stderr
    assert Image.open(tmp_path / "o.png").size == (64, 48)


def test_generate_in_a_learnt_style(runner, tmp_path, tiny_generate, monkeypatch):
    """generate --style: learnt once (cached), saved, reused from the .safetensors; seamless still works;
    the style image is never an output."""
    monkeypatch.setenv("IMGDIFF_CACHE", str(tmp_path / "cache"))
    style = tmp_path / "style.png"
    Image.fromarray(np.asarray(Image.open(EXAMPLES / "style.png").convert("RGB"))[:40, :40]).save(style)
    before = style.read_bytes()
    saved = tmp_path / "saved.safetensors"
    base = ["generate", "--style", str(style), "--model", str(tiny_generate), "--style-steps", "2", "--steps", "2"]
    r = cli(runner, *base, "--size", "32", "--tileable", "--save-style", str(saved), "-o", str(tmp_path / "a.png"))
    assert r.exit_code == 0, r.stderr
    meta = json.loads(png_metadata(tmp_path / "a.png")["imgdiff"])
    assert meta["style"] == str(style) and meta["tileable"] and meta["model"] != tiny_generate.name
    r = cli(runner, *base, "--size", "32", "--tileable", "-o", str(tmp_path / "b.png"), "--json")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()  # the cached style, same pixels
    r = cli(
        runner,
        "generate",
        "--style",
        str(saved),
        "--size",
        "32",
        "--tileable",
        "--steps",
        "2",
        "-o",
        str(tmp_path / "c.png"),
    )
    assert r.exit_code == 0, r.stderr
    a, c = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "c.png"))
    assert np.array_equal(a, c)  # the saved style is the learnt one
    plain = tmp_path / "plain.png"
    assert (
        cli(
            runner, "generate", "--model", str(tiny_generate), "--size", "32", "--steps", "2", "-o", str(plain)
        ).exit_code
        == 0
    )
    assert not np.array_equal(a, np.asarray(Image.open(plain)))
    for extra in (["-o", str(style), "--overwrite"], ["--save-style", str(style), "-o", str(tmp_path / "d.png")]):
        one_error_line(cli(runner, *base, *extra), 2)
    one_error_line(cli(runner, "generate", "--save-style", str(saved), "-o", str(tmp_path / "e.png")), 2, "--style")
    assert style.read_bytes() == before


def test_style_cache_on_a_full_disk_still_stylizes(runner, tmp_path, noisy_png, tiny_generate, monkeypatch):
    from safetensors import SafetensorError

    import imgdiff.train.style as st
    from imgdiff.train.style import cache_dir

    monkeypatch.setenv("IMGDIFF_CACHE", str(tmp_path / "cache"))
    real = st.save_checkpoint

    def full_disk(path, *a, **kw):
        if cache_dir() in path.parents:
            raise SafetensorError("Error while serializing: IoError(No space left on device (os error 28))")
        return real(path, *a, **kw)

    monkeypatch.setattr(st, "save_checkpoint", full_disk)
    args = ["stylize", str(noisy_png), "--style", str(EXAMPLES / "style.png"), "--model", str(tiny_generate)]
    r = cli(runner, *args, "--style-steps", "2", "--steps", "2", "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 0, r.stderr
    assert "not cached" in r.stderr and (tmp_path / "o.png").exists()
    assert not list(cache_dir().glob("*.safetensors"))


def test_json_into_a_full_or_closed_stdout(tmp_path, noisy_png):
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "imgdiff", "denoise", str(noisy_png), "-o", str(tmp_path / "o.png"), "--json"],
            env=ENV,
            cwd=ROOT,
            stdout=full,
            stderr=subprocess.PIPE,
        )
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "o.png").exists()  # the image is the result; it is written anyway

    src = tmp_path / "many"
    make_pngs(src, np.asarray(Image.open(noisy_png)), [f"{i}.png" for i in range(3)])
    p = subprocess.Popen(
        f"{sys.executable} -m imgdiff denoise {src} -o {tmp_path / 'out'} --sigma 5 --ensemble 1 --json | head -n1",
        shell=True,
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = p.communicate(timeout=120)
    assert len(out.decode().splitlines()) == 1
    assert tree(tmp_path / "out") == ["0.png", "1.png", "2.png"]  # the batch went on


def test_short_writes_to_stdout_are_completed_or_reported(noisy_png, tmp_path):
    p = subprocess.run(
        f"{sys.executable} -m imgdiff upscale {noisy_png} --scale 4 -o - | head -c 10 > /dev/null; "
        "echo ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        env=ENV,
        cwd=ROOT,
        capture_output=True,
    )
    err = p.stderr.decode()
    assert p.stdout.decode().strip() == "1" and "stdout" in err and "Traceback" not in err
    full = subprocess_cli("upscale", str(noisy_png), "--scale", "4", "-o", "-")
    assert full.returncode == 0 and Image.open(__import__("io").BytesIO(full.stdout)).size == (256, 192)


def test_image_bytes_are_not_written_to_a_terminal(noisy_png):
    import pty

    leader, follower = pty.openpty()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "imgdiff", "denoise", str(noisy_png), "-o", "-", "--sigma", "5"],
            env=ENV,
            cwd=ROOT,
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 2 and b"terminal" in r.stderr


def test_stale_temp_files_of_a_killed_run_are_cleaned(runner, tmp_path, noisy_png):
    from imgdiff.io import is_temp_name

    out = tmp_path / "out"
    out.mkdir()
    old = out / ".imgdiff-deadbeef.tmp"
    fresh = out / ".imgdiff-cafef00d.tmp"
    foreign = out / ".something.tmp"
    for f in (old, fresh, foreign):
        f.write_bytes(b"partial")
    assert is_temp_name(old.name) and is_temp_name(fresh.name) and not is_temp_name(foreign.name)
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    r = cli(runner, "denoise", str(noisy_png), "-o", str(out), "--sigma", "5", "--ensemble", "1")
    assert r.exit_code == 0, r.stderr
    assert not old.exists() and fresh.exists() and foreign.exists()


def test_long_output_names_fit(runner, tmp_path, noisy_png):
    name = "n" * (250 - len(".png")) + ".png"
    r = cli(runner, "denoise", str(noisy_png), "-o", str(tmp_path / name), "--sigma", "5", "--ensemble", "1")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / name).exists()


def test_generate_respects_max_pixels_before_allocating(runner, no_model_loads, tmp_path):
    one_error_line(cli(runner, "generate", "-o", str(tmp_path / "g.png"), "--size", "16000", "--max-pixels", "1000"), 2)
    one_error_line(cli(runner, "generate", "-o", str(tmp_path / "g.png"), "--size", "100000"), 2, "--max-pixels")
    one_error_line(cli(runner, "generate", "-o", str(tmp_path / "g.png"), "--size", "0"), 2, "--size")


def test_eval_on_an_empty_folder_is_an_error(runner, tmp_path):
    r = cli(runner, "eval", str(tmp_path), "--task", "denoise")
    one_error_line(r, 2, "no images")
    assert "nan" not in r.stdout.lower()


def test_tile_settings_are_in_the_metadata(runner, noisy_png, tmp_path):
    r = cli(
        runner,
        "denoise",
        str(noisy_png),
        "-o",
        str(tmp_path / "o.png"),
        "--sigma",
        "5",
        "--tile",
        "32",
        "--ensemble",
        "1",
    )
    assert r.exit_code == 0, r.stderr
    meta = json.loads(png_metadata(tmp_path / "o.png")["imgdiff"])
    assert meta["tile"] == 32 and meta["tile_overlap"] == 32


def test_alpha_dropped_by_the_output_format_is_warned(runner, tmp_path, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])
    src = tmp_path / "a.png"
    Image.fromarray(rgba).save(src)
    r = cli(runner, "denoise", str(src), "-o", str(tmp_path / "a.jpg"), "--sigma", "5", "--ensemble", "1")
    assert r.exit_code == 0 and "alpha" in r.stderr


def test_crafted_checkpoint_headers_are_one_line(runner, tmp_path, noisy_png):
    import struct

    good = tiny_checkpoint(tmp_path / "good.safetensors")
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    variants = {
        "offsets-strings": {**header, name: {**header[name], "data_offsets": ["0", "8"]}},
        "metadata-list": {**header, "__metadata__": ["imgdiff"]},
        "config-list": {**header, "__metadata__": {"imgdiff": "[1, 2]"}},
        "shape-floats": {**header, name: {**header[name], "shape": [1.5]}},
        "dtype-list": {**header, name: {**header[name], "dtype": ["F16"]}},
        "entry-string": {**header, name: "x"},
        "config-sigma-string": {
            **header,
            "__metadata__": {
                "imgdiff": json.dumps({**json.loads(header["__metadata__"]["imgdiff"]), "sigma_max": "x"})
            },
        },
    }
    for label, h in variants.items():
        body = json.dumps(h).encode()
        path = tmp_path / f"{label}.safetensors"
        path.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n :])
        for args in (["denoise", str(noisy_png), "--sigma", "5", "--model", str(path)], ["models", "info", str(path)]):
            r = cli(runner, *args)
            if label == "config-sigma-string" and args[0] == "models":
                continue  # models info shows any well-formed config
            assert r.exit_code == 1, (label, args[0], r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (label, r.stderr)


def test_hf_model_offline_fails_fast_and_quietly(tmp_path, noisy_png):
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "", "HF_ENDPOINT": "https://127.0.0.1:9"}
    t = time.time()
    r = subprocess_cli("denoise", str(noisy_png), "--model", "hf://x/y/z.safetensors", "-q", env=env)
    err = r.stderr.decode().strip().splitlines()
    assert time.time() - t < 15
    assert r.returncode == 1 and len(err) == 1 and "unreachable" in err[0]
