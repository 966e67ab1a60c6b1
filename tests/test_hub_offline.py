"""`--model hf://org/repo/file` resolves through huggingface_hub's cache, offline."""

from __future__ import annotations

import shutil

from imgdiff.hub import weights_dir
from tests.conftest import subprocess_cli

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_cache(root, repo="imgdiff-org/models", filename="den/denoise.safetensors"):
    """The layout huggingface_hub itself writes: refs/main -> snapshots/<commit>/<file>."""
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(COMMIT)
    target = base / "snapshots" / COMMIT / filename
    target.parent.mkdir(parents=True)
    shutil.copy(weights_dir() / "denoise.safetensors", target)
    return target


def test_hf_model_from_offline_cache(tmp_path, noisy_png):
    make_cache(tmp_path / "hub")
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "o.png"
    r = subprocess_cli(
        "denoise",
        str(noisy_png),
        "-o",
        str(out),
        "--sigma",
        "20",
        "--model",
        "hf://imgdiff-org/models/den/denoise.safetensors",
        env=env,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert out.exists()
    r = subprocess_cli(
        "denoise",
        str(noisy_png),
        "-o",
        str(tmp_path / "p.png"),
        "--model",
        "hf://imgdiff-org/models/missing.safetensors",
        env=env,
    )
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "hf://imgdiff-org/models/missing.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "p.png").exists()
