"""Checkpoints carry their config, are verified, and refuse to load for the wrong job."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
import torch

from imgdiff import hub
from imgdiff.cards import write_manifest
from imgdiff.checkpoint import read_config, read_header
from imgdiff.errors import CheckpointError
from tests.conftest import tiny_checkpoint

CPU = torch.device("cpu")


def test_roundtrip_and_config(tmp_path):
    p = tiny_checkpoint(tmp_path / "d.safetensors", "denoise")
    cfg = read_config(p)
    assert cfg["task"] == "denoise" and cfg["net"]["base"] == 8 and cfg["architecture"] == "unet-half"
    m = hub.load(str(p), "denoise", CPU)
    assert m.task == "denoise" and len(m.sha256) == 64
    x = torch.rand(1, 3, 32, 32)
    assert m.denoiser(x, torch.tensor([0.1])).shape == x.shape


def test_wrong_task_is_refused(tmp_path):
    p = tiny_checkpoint(tmp_path / "g.safetensors", "generate")
    with pytest.raises(CheckpointError, match="cannot be used for 'restore'"):
        hub.load(str(p), "restore", CPU)


def test_truncated_and_absurd_headers(tmp_path):
    p = tiny_checkpoint(tmp_path / "d.safetensors")
    data = p.read_bytes()
    t = tmp_path / "trunc.safetensors"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        hub.load(str(t), "denoise", CPU)
    h = tmp_path / "huge.safetensors"
    h.write_bytes(struct.pack("<Q", 50 << 30) + b"{}")
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        read_header(h)
    e = tmp_path / "empty.safetensors"
    e.write_bytes(b"")
    with pytest.raises(CheckpointError, match="too short"):
        hub.load(str(e), "denoise", CPU)


def test_shape_mismatch_is_refused(tmp_path):
    p = tiny_checkpoint(tmp_path / "d.safetensors")
    header = read_header(p)
    cfg = json.loads(header["__metadata__"]["imgdiff"])
    cfg["net"]["base"] = 12  # the tensors no longer fit the config
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(p)), str(bad), metadata={"imgdiff": json.dumps(cfg)})
    with pytest.raises(CheckpointError, match="has shape"):
        hub.load(str(bad), "denoise", CPU)


def rewrite(src, dst, tensors=None, cfg_update=None, top_update=None):
    """A copy of src with tensors replaced, net config keys (cfg_update) and top-level keys changed."""
    from safetensors.torch import load_file, save_file

    cfg = json.loads(read_header(src)["__metadata__"]["imgdiff"])
    for k, v in (cfg_update or {}).items():
        cfg["net"][k] = v
    cfg.update(top_update or {})
    t = load_file(str(src))
    t.update(tensors or {})
    save_file(t, str(dst), metadata={"imgdiff": json.dumps(cfg)})
    return dst


def test_wrong_dtype_is_refused(tmp_path):
    p = tiny_checkpoint(tmp_path / "d.safetensors")
    name = next(k for k in read_header(p) if k.endswith("head.weight"))
    from safetensors.torch import load_file

    t = load_file(str(p))[name]
    bad = rewrite(p, tmp_path / "int.safetensors", {name: t.to(torch.int32)})
    with pytest.raises(CheckpointError, match="not a float type"):
        hub.load(str(bad), "denoise", CPU)


def test_giant_config_is_refused_before_allocating(tmp_path):
    import resource
    import time

    p = tiny_checkpoint(tmp_path / "d.safetensors")
    bad = rewrite(p, tmp_path / "giant.safetensors", cfg_update={"base": 200_000})  # ~10^12 parameters
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.time()
    with pytest.raises(CheckpointError):
        hub.load(str(bad), "denoise", CPU)
    assert time.time() - t < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    tiny_checkpoint(folder / "denoise.safetensors")
    write_manifest(folder)
    monkeypatch.setattr(hub, "weights_dir", lambda: folder)
    hub.manifest.cache_clear()
    yield folder
    hub.manifest.cache_clear()


def test_tampered_shipped_weights_are_refused(weights_copy):
    assert hub.load("denoise", "denoise", CPU).name == "denoise"
    assert all(ok for _, ok, _ in hub.verify_all())
    p = weights_copy / "denoise.safetensors"
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit in a weight
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        hub.load("denoise", "denoise", CPU)
    assert not any(ok for _, ok, _ in hub.verify_all())


def test_shipped_weights_match_their_manifest():
    rows = hub.verify_all()
    assert {name for name, _, _ in rows} == {
        "denoise",
        "denoise-real",
        "upscale-x2",
        "upscale-x4",
        "upscale-x4-real",
        "generate",
    }
    assert all(ok for _, ok, _ in rows)
    for name, entry in hub.manifest().items():
        assert (hub.weights_dir() / entry["file"]).stat().st_size <= 25_000_000, name


@pytest.mark.parametrize(
    "spec",
    [
        "hf://org/../etc/x.safetensors",
        "hf://org/repo/../../x.safetensors",
        "hf://org/repo/file.bin",
        "hf://org",
        "hf://org/re po/x.safetensors",
    ],
)
def test_hf_specs_are_validated(spec):
    with pytest.raises(CheckpointError):
        hub.parse_hf(spec)


def test_hf_spec_parsing():
    assert hub.parse_hf("hf://org/repo/sub/m.safetensors") == ("org/repo", "sub/m.safetensors", None)
    assert hub.parse_hf("hf://org/repo@v1/m.safetensors") == ("org/repo", "m.safetensors", "v1")


def test_no_pickle_files_in_repo():
    root = hub.weights_dir().parent
    folders = [root / d for d in ("weights", "imgdiff", "tests", "docs", "runs", "benchmarks", "scripts")]
    exts = ("*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.bin", "*.npy", "*.npz")
    bad = [p for d in folders if d.is_dir() for ext in exts for p in d.rglob(ext)]
    assert not bad


def test_copy_keeps_working(tmp_path):
    src = hub.weights_dir() / "denoise.safetensors"
    dst = tmp_path / "mine.safetensors"
    shutil.copy(src, dst)
    assert hub.load(str(dst), "denoise", CPU).name == "mine.safetensors"


@pytest.mark.parametrize("value", ["32", 0, -4, True, 1.5])
def test_bad_int8_threshold_is_one_error(tmp_path, value):
    p = tiny_checkpoint(tmp_path / "d.safetensors")
    bad = rewrite(p, tmp_path / "bad.safetensors", top_update={"int8_min_channels": value})
    with pytest.raises(CheckpointError, match="int8_min_channels must be a positive whole number"):
        hub.load(str(bad), "denoise", CPU)
