"""Training writes a loadable best checkpoint and a resumable state; eval compares to baselines."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from imgdiff.cards import write_manifest
from imgdiff.checkpoint import load_tensors, read_config, read_header, save_checkpoint
from imgdiff.defaults import DENOISE_ENSEMBLE
from imgdiff.train.data import is_validation
from tests.conftest import EXAMPLES, cli


def make_corpus(folder, n=12):
    """Crops of the shipped example photo, named so both training and validation get some."""
    folder.mkdir()
    a = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB"))
    names = []
    i = 0
    while len(names) < n or not any(is_validation(x) for x in names):
        y, x = (i * 37) % (a.shape[0] - 96), (i * 53) % (a.shape[1] - 96)
        name = f"img{i:03d}.png"
        Image.fromarray(a[y : y + 96, x : x + 96]).save(folder / name)
        names.append(name)
        i += 1
    return folder


def test_train_resume_and_load(runner, tmp_path):
    data = make_corpus(tmp_path / "data")
    out, run = tmp_path / "d.safetensors", tmp_path / "run"
    args = [
        "train",
        "--task",
        "denoise",
        "--data",
        str(data),
        "--out",
        str(out),
        "--run-dir",
        str(run),
        "--batch",
        "2",
        "--crop",
        "32",
        "--val-every",
        "2",
        "--threads",
        "1",
        "--quiet",
    ]
    r = cli(runner, *args, "--max-steps", "4")
    assert r.exit_code == 0, r.stderr
    cfg = read_config(out)
    assert cfg["task"] == "denoise" and cfg["training"]["steps"] >= 2 and "psnr_s25" in cfg["validation"]
    meta = json.loads(read_header(run / "state.safetensors")["__metadata__"]["trainer"])
    assert meta["step"] == 4
    out.unlink()  # so that the resumed launch writes --out whatever its validation
    r = cli(runner, *args, "--max-steps", "2", "--resume")
    assert r.exit_code == 0, r.stderr
    meta = json.loads(read_header(run / "state.safetensors")["__metadata__"]["trainer"])
    assert meta["step"] == 6
    # a resumed run remembers how it began: both launches, oldest first, and its card shows them
    assert len(meta["commands"]) == 2
    training = read_config(out)["training"]
    assert training["steps"] == 6 and training["earlier_commands"] == meta["commands"][:1]
    cards = tmp_path / "cards"
    cards.mkdir()
    shutil.copy(out, cards / "denoise.safetensors")
    write_manifest(cards)
    assert "| training command (earlier launch) | `imgdiff " in (cards / "MODEL_CARDS.md").read_text()
    rows = list(csv.reader(open(run / "log.csv")))
    assert rows[0] == ["step", "minutes", "lr", "loss", "val"] and len(rows) > 3
    r = cli(
        runner, "denoise", str(data / "img000.png"), "-o", str(tmp_path / "x.png"), "--model", str(out), "--sigma", "10"
    )
    assert r.exit_code == 0, r.stderr


def test_init_with_new_net_shape_keeps_matching_tensors(runner, tmp_path):
    """--net changes the pixel-unshuffle: head and tail start fresh, the body comes from --init."""
    from imgdiff.checkpoint import load_tensors

    data = make_corpus(tmp_path / "data")
    common = ["--task", "upscale-x2", "--data", str(data), "--batch", "2", "--crop", "32", "--threads", "1", "-q"]
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    small = "base=8,mults=1/2,emb_dim=16"
    r = cli(
        runner,
        "train",
        *common,
        "--out",
        str(first),
        "--run-dir",
        str(tmp_path / "r1"),
        "--max-steps",
        "2",
        "--net",
        small,
    )
    assert r.exit_code == 0, r.stderr
    r = cli(
        runner,
        "train",
        *common,
        "--out",
        str(second),
        "--run-dir",
        str(tmp_path / "r2"),
        "--max-steps",
        "1",
        "--init",
        str(first),
        "--net",
        "unshuffle=4",
        "--lr",
        "0",
    )
    assert r.exit_code == 0, r.stderr
    assert read_config(second)["net"]["unshuffle"] == 4 and read_config(second)["net"]["base"] == 8
    a, b = load_tensors(first), load_tensors(second)
    assert b["net.head.weight"].shape != a["net.head.weight"].shape
    body = [k for k in a if k.startswith("net.down.")]
    assert body and all(b[k].shape == a[k].shape and (b[k] == a[k]).all() for k in body)
    r = cli(runner, "train", *common, "--out", str(second), "--max-steps", "1", "--net", "unshuffle=x")
    assert r.exit_code == 2 and "unshuffle=x" in r.stderr


def test_eval_reports_baselines_and_grid(runner, tmp_path):
    data = make_corpus(tmp_path / "data", n=2)
    r = cli(
        runner,
        "eval",
        str(data),
        "--task",
        "denoise",
        "--sigma",
        "25",
        "--limit",
        "2",
        "--json",
        "--grid",
        str(tmp_path / "grid.png"),
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    res = out["results"]
    assert res["imgdiff"]["psnr"] > res["nlmeans"]["psnr"] > res["noisy"]["psnr"]
    assert Image.open(tmp_path / "grid.png").size == (3 * 256 + 8, 2 * 256 + 4)
    # by default eval measures what `imgdiff denoise` runs (its ensemble); --ensemble 1 is one pass
    assert out["ensemble"] == DENOISE_ENSEMBLE
    r = cli(runner, "eval", str(data), "--sigma", "25", "--limit", "2", "--json", "--ensemble", "1")
    one = json.loads(r.stdout)
    assert one["ensemble"] == 1 and one["results"]["imgdiff"]["psnr"] != res["imgdiff"]["psnr"]
    r = cli(runner, "eval", str(data), "--task", "upscale-x4", "--limit", "2", "--json")
    res = json.loads(r.stdout)["results"]
    assert res["imgdiff"]["psnr"] > res["bicubic"]["psnr"]


def test_zoomed_crops_stay_in_range_and_average():
    """Zoom reads a larger region and area-averages it: still in [-1, 1], with less pixel-level spread."""
    import torch

    from imgdiff.train.data import ImageBank

    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.integers(0, 256, (3, 300, 300), dtype=np.uint8))
    bank = ImageBank([img])
    gen = torch.Generator().manual_seed(0)
    plain = bank.sample(8, 64, gen)
    zoomed = bank.sample(8, 64, gen, zoom=(0.25, 0.5))
    for b in (plain, zoomed):
        assert b.shape[1:] == (3, 64, 64) and b.min() >= -1 and b.max() <= 1
    # averaging 2-4x more pixels per output pixel shrinks the spread of i.i.d. values
    assert zoomed.std() < 0.6 * plain.std()


def test_several_data_folders_validate_each_and_select_one(runner, tmp_path):
    """Wallpapers + photos: both held-out slices reported, checkpoints chosen on the named one."""
    from imgdiff.train.trainer import parse_data

    walls, photos = make_corpus(tmp_path / "walls"), make_corpus(tmp_path / "photos", n=14)
    out, run = tmp_path / "d.safetensors", tmp_path / "run"
    small = "base=8,mults=1/2,emb_dim=16"
    common = ["--batch", "2", "--crop", "32", "--threads", "1", "--val-every", "1", "-q"]
    first = tmp_path / "first.safetensors"
    r = cli(runner, "train", "--task", "denoise", "--data", str(walls), "--out", str(first), "--run-dir",
            str(tmp_path / "r0"), "--max-steps", "1", "--net", small, *common)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = cli(runner, "train", "--task", "denoise", "--data", f"{walls}@0.25", "--data", str(photos),
            "--select", "photos", "--init", str(first), "--out", str(out), "--run-dir", str(run),
            "--max-steps", "1", *common)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    cfg = read_config(out)
    figures = cfg["validation"]
    assert figures["select"] == "photos" and figures["score"] == figures["photos"]["score"]
    assert {"psnr_s15", "psnr_s25", "psnr_s50"} <= set(figures["walls"]) and figures["walls"] != figures["photos"]
    assert "25% of crops" in cfg["training"]["data"] and "chosen on the photos slice" in cfg["training"]["data"]
    rows = list(csv.reader(open(run / "log.csv")))
    assert rows[1][:3] == ["0", "0.0", "init"]  # the starting point, measured on the same crops
    r = cli(runner, "train", "--task", "denoise", "--data", str(walls), "--data", str(photos), "--select", "nope",
            "--out", str(out), *common)  # fmt: skip
    assert r.exit_code == 2 and "--select nope" in r.stderr
    assert parse_data("x@0.5").share == 0.5 and parse_data("x").share is None
    r = cli(runner, "train", "--task", "denoise", "--data", f"{walls}@0.5", "--data", f"{photos}@0.6",
            "--out", str(out), *common)  # fmt: skip
    assert r.exit_code == 2 and "add up to more than 1" in r.stderr
    for bad in ("x@0", "x@1.5", "x@nan", "x@half"):
        r = cli(runner, "train", "--task", "denoise", "--data", bad, "--out", str(out), *common)
        assert r.exit_code == 2 and bad in r.stderr


def test_a_fine_tune_never_replaces_its_init_with_a_worse_checkpoint(runner, tmp_path):
    """--init X --out X (how runs continue): the init's held-out score is the bar, so a step that only
    dips below it (here a learning rate that wrecks the network) leaves X as it was; to a new --out the
    run still writes its last weights, saying so, with the init's int8 threshold."""
    data = make_corpus(tmp_path / "data")
    x = tmp_path / "x.safetensors"
    common = ["--task", "denoise", "--data", str(data), "--batch", "2", "--crop", "32", "--threads", "1", "-q"]
    small = ["--net", "base=8,mults=1/2,emb_dim=16"]
    r = cli(runner, "train", *common, *small, "--out", str(x), "--run-dir", str(tmp_path / "r0"), "--max-steps", "3")
    assert r.exit_code == 0, r.stderr
    save_checkpoint(x, load_tensors(x), {**read_config(x), "int8_min_channels": 32})  # as a shipped one
    before = hashlib.sha256(x.read_bytes()).hexdigest()
    wreck = [*small, "--init", str(x), "--lr", "1", "--warmup", "1", "--max-steps", "3", "--val-every", "1"]
    r = cli(runner, "train", *common, *wreck, "--out", str(x), "--run-dir", str(tmp_path / "r1"))
    assert r.exit_code == 0, r.stderr
    rows = list(csv.reader(open(tmp_path / "r1" / "log.csv")))
    init, later = json.loads(rows[1][4])["score"], [json.loads(row[4])["score"] for row in rows[2:]]
    assert later and all(not v > init for v in later)  # the wreck really did dip (or went NaN)
    assert hashlib.sha256(x.read_bytes()).hexdigest() == before
    other = tmp_path / "other.safetensors"
    r = cli(runner, "train", *common, *wreck, "--out", str(other), "--run-dir", str(tmp_path / "r2"))
    assert r.exit_code == 0 and other.exists()
    assert read_config(other)["int8_min_channels"] == 32  # the same network keeps its measured int8 threshold


def test_source_share_sets_the_fraction_of_crops(tmp_path):
    """A folder given 90 % of the crops supplies ~90 % of them, though its images are far smaller."""
    import torch

    from imgdiff.train.data import ImageBank

    Image.new("RGB", (200, 200), 0).save(tmp_path / "big.png")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(tmp_path / "small.png")
    bank = ImageBank.from_sources([([tmp_path / "big.png"], None), ([tmp_path / "small.png"], 0.9)], "cpu", 32)
    crops = bank.sample(400, 32, torch.Generator().manual_seed(0))
    assert 0.85 < float((crops.mean((1, 2, 3)) > 0).float().mean()) < 0.95
    by_area = ImageBank.from_sources([([tmp_path / "big.png"], None), ([tmp_path / "small.png"], None)], "cpu", 32)
    assert abs(float(by_area.weights[1]) - 64**2 / (64**2 + 200**2)) < 1e-9
    with pytest.raises(ValueError, match="add up to 1.5"):
        ImageBank.from_sources([([tmp_path / "big.png"], 0.6), ([tmp_path / "small.png"], 0.9)], "cpu", 32)


def test_a_fresh_run_is_fixed_by_its_seed(runner, tmp_path):
    """--seed fixes the initial weights too, not only crops and noise: two launches, one network."""
    data = make_corpus(tmp_path / "data", n=10)
    digests = []
    for i, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"{i}.safetensors"
        tiny = "--net base=8,mults=1/2,blocks=1,emb_dim=16 --batch 2 --crop 32 --max-steps 1 --threads 1 --quiet"
        args = ["train", "--task", "denoise", "--data", str(data), "--out", str(out), *tiny.split()]
        r = cli(runner, *args, "--run-dir", str(tmp_path / f"r{i}"), "--seed", str(seed))
        assert r.exit_code == 0, r.stderr
        digests.append(
            hashlib.sha256(b"".join(v.numpy().tobytes() for _, v in sorted(load_tensors(out).items()))).hexdigest()
        )
    assert digests[0] == digests[1] != digests[2]


def test_net_overrides_take_one_block_count_or_one_per_level():
    from imgdiff.train.trainer import parse_net

    assert parse_net("base=8,blocks=3,mults=4") == {"base": 8, "blocks": 3, "mults": [4]}
    assert parse_net("blocks=2/2/3/4") == {"blocks": [2, 2, 3, 4]}
    with pytest.raises(ValueError, match="not an integer"):
        parse_net("blocks=2/x")


def test_texture_distance_tells_a_texture_from_its_smear():
    """The generate benchmark's and trainer's statistic: other crops of the same photo are nearer
    than those crops blurred, and a set is at distance 0 from itself."""
    import cv2

    from imgdiff.eval.metrics import texture_distance

    a = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB"))
    crops = [np.ascontiguousarray(a[y : y + 64, x : x + 64]) for y in (0, 64) for x in (0, 64, 128)]
    ref, other = crops[:3], crops[3:]
    smear = [cv2.GaussianBlur(c, (0, 0), 2.0) for c in other]
    assert texture_distance(ref, ref) == 0
    assert texture_distance(other, ref) < texture_distance(smear, ref)


def test_zoom_levels_are_the_middles_of_the_training_zoom_range():
    """Held-out crops for generate runs and the benchmark are zoomed where training crops are."""
    from imgdiff.tasks import crop_zoom, default_config
    from imgdiff.train.data import zoom_levels

    assert zoom_levels((0.25, 1.0)) == (0.34375, 0.53125, 0.71875, 0.90625)
    assert zoom_levels([0.5, 0.5]) == (0.5,) and zoom_levels((1.0, 1.0), n=3) == (1.0,)
    assert crop_zoom(default_config("generate")) == (0.15, 0.6) == crop_zoom({"task": "generate"})
    assert crop_zoom({"task": "denoise"}) == (1.0, 1.0)
    assert crop_zoom({"task": "generate", "zoom": [0.25, 1]}) == (0.25, 1.0)


def test_generate_runs_draw_their_samples_once_for_every_held_out_set(runner, tmp_path, monkeypatch):
    """Two data folders, two held-out sets: one set of samples (the costly part) for both, judged
    against crops of the selected folder's training images at the run's training zooms and twice the
    training size (the held-out crops give the loss)."""
    import imgdiff.train.trainer as trainer

    calls, sides, used = [], [], []
    draw = trainer.sample_distance
    crops = trainer.validation_crops

    def counted(*a, **k):
        calls.append(1)
        return draw(*a, **k)

    def recorded(paths, size=256, zoom=1.0, grid=1):
        sides.append((size, zoom))
        used.append({p.parent.name for p in paths} | {is_validation(p.name) for p in paths})
        return crops(paths, size, zoom, grid)

    monkeypatch.setattr(trainer, "sample_distance", counted)
    monkeypatch.setattr(trainer, "validation_crops", recorded)
    a, b = make_corpus(tmp_path / "a"), make_corpus(tmp_path / "b")
    for f in b.iterdir():  # other held-out crops than a's
        Image.open(f).transpose(Image.Transpose.ROTATE_90).save(f)
    out = tmp_path / "g.safetensors"
    r = cli(runner, "train", "--task", "generate", "--data", str(a), "--data", str(b), "--select", "b",
            "--out", str(out), "--run-dir", str(tmp_path / "run"), "--zoom", "0.5,1", "--net",
            "base=8,mults=1/2,emb_dim=16", "--batch", "2", "--max-steps", "1", "--threads", "1", "-q")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    figures = read_config(out)["validation"]
    assert figures["select"] == "b" and figures["score"] == -figures["b"]["texture_distance"]
    assert figures["a"]["texture_distance"] == figures["b"]["texture_distance"] > 0
    assert figures["a"]["loss"] != figures["b"]["loss"]  # each on its own held-out crops
    assert len(calls) == 1  # the run validated once (at its end), both sets on the same samples
    assert {"b", False} in used  # the reference: b's training images, none held out
    assert sorted(set(sides)) == [(128, z) for z in (0.5625, 0.6875, 0.8125, 0.9375)]


def test_generate_runs_choose_checkpoints_on_their_samples(runner, tmp_path):
    """A generate run's score is minus the texture distance of its fixed-seed samples (the loss is
    still logged), and a checkpoint from before the key keeps the loss as its score."""
    import torch

    from imgdiff.models import build_denoiser
    from imgdiff.tasks import default_config
    from imgdiff.train.trainer import validate

    data = make_corpus(tmp_path / "data")
    out, run = tmp_path / "g.safetensors", tmp_path / "run"
    small = ["--net", "base=8,mults=1/2,emb_dim=16", "--batch", "2", "--max-steps", "1", "--threads", "1", "-q"]
    r = cli(runner, "train", "--task", "generate", "--data", str(data), "--out", str(out), "--run-dir", str(run),
            "--zoom", "0.5,1", *small)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert read_config(out)["zoom"] == [0.5, 1.0]
    for bad in ("0,1", "0.5,nan", "0.8,0.5", "1,2", "half", "0.5"):
        r = cli(runner, "train", "--task", "generate", "--data", str(data), "--out", str(out), "--zoom", bad, *small)
        assert r.exit_code == 2 and f"--zoom {bad!r}" in r.stderr, (bad, r.stderr)
    figures = read_config(out)["validation"]
    assert figures["texture_distance"] > 0 and figures["score"] == -figures["texture_distance"]
    assert figures["loss"] > 0
    cfg = {k: v for k, v in default_config("generate").items() if k != "val_samples"}
    cfg["net"] = {**cfg["net"], "base": 8, "mults": [1, 2], "emb_dim": 16}
    old = validate(cfg, build_denoiser(cfg), torch.zeros(2, 3, 32, 32))
    assert "texture_distance" not in old and old["score"] == -old["loss"]
