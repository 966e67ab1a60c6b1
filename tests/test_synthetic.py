"""Dead-leaves training images: the radius law, coverage, determinism and the CLI that writes them."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from imgdiff.train.synthetic import dead_leaves, power_law_radii
from tests.conftest import EXAMPLES, cli


def test_radii_follow_the_power_law_within_bounds():
    r = power_law_radii(np.random.default_rng(0), 200_000, 2.0, 256.0, alpha=3.0)
    assert r.min() >= 2.0 and r.max() <= 256.0
    # density r^-3 on [2, 256]: P(r > 4) = (4^-2 - 256^-2) / (2^-2 - 256^-2) ~ 0.25
    assert abs((r > 4).mean() - 0.25) < 0.01
    # and the median is 2 * sqrt(2) (half the mass of r^-2 below it)
    assert abs(np.median(r) - 2 * 2**0.5) < 0.03


def test_images_are_covered_deterministic_and_use_the_palette():
    palette = np.array([[10, 200, 30], [250, 250, 5]], np.uint8)
    a = dead_leaves(np.random.default_rng(3), 96, palette, uniform_share=0.0, disks=4000, blur_prob=0.0)
    b = dead_leaves(np.random.default_rng(3), 96, palette, uniform_share=0.0, disks=4000, blur_prob=0.0)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    # only the two palette colours and their anti-aliased mixtures: every pixel is on the segment
    t = (a[..., 0].astype(float) - 10) / 240
    on_segment = np.abs(a[..., 1] - (200 + 50 * t)) <= 2
    assert on_segment.mean() > 0.99
    # both colours present at full strength (edges at every scale, not one flat disk)
    for colour in palette:
        assert (np.abs(a.astype(int) - colour).sum(-1) <= 3).mean() > 0.05
    c = dead_leaves(np.random.default_rng(4), 96, palette, uniform_share=0.0, disks=4000, blur_prob=0.0)
    assert not np.array_equal(a, c)


def test_cli_writes_the_images_and_refuses_a_folder_with_files(runner, tmp_path):
    colours = tmp_path / "colours"
    colours.mkdir()
    Image.open(EXAMPLES / "clean.png").convert("RGB").save(colours / "a.png")
    out = tmp_path / "dl"
    r = cli(runner, "dead-leaves", str(out), "--count", "3", "--size", "64", "--palette", str(colours))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["images"] == 3
    names = sorted(p.name for p in out.iterdir())
    assert names == ["deadleaves-0000.png", "deadleaves-0001.png", "deadleaves-0002.png"]
    before = (out / names[0]).read_bytes()
    assert Image.open(out / names[0]).size == (64, 64)
    r = cli(runner, "dead-leaves", str(out), "--count", "1", "--size", "64")
    assert r.exit_code == 2 and "not empty" in r.stderr
    assert (out / names[0]).read_bytes() == before and len(list(out.iterdir())) == 3
    r = cli(runner, "dead-leaves", str(out / names[0]), "--count", "1")
    assert r.exit_code == 2 and "a file is in the way" in r.stderr and (out / names[0]).read_bytes() == before
    r = cli(runner, "dead-leaves", str(tmp_path / "x"), "--palette", str(tmp_path / "missing"))
    assert r.exit_code == 2 and "not a folder" in r.stderr
