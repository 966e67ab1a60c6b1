"""Shared fixtures: small real images (cut from the shipped example) and CLI runners."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMGDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 64x48 crop of a real photograph, uint8 RGB."""
    a = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB"))
    return a[100:148, 150:214].copy()


@pytest.fixture
def noisy_png(tmp_path, photo) -> Path:
    rng = np.random.default_rng(0)
    n = np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).round().astype(np.uint8)
    p = tmp_path / "noisy.png"
    Image.fromarray(n).save(p)
    return p


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def cli(runner: CliRunner, *args: str, input: bytes | None = None):
    from imgdiff.cli import app

    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def subprocess_cli(*args: str, input: bytes | None = None, env: dict | None = None, timeout: int = 120):
    """The real console entry point in a child process."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "imgdiff", *args], input=input, capture_output=True, env=e, timeout=timeout, cwd=ROOT
    )


def tiny_checkpoint(path: Path, task: str = "denoise", seed: int = 0) -> Path:
    """A real but tiny checkpoint of `task` (random weights), written like training writes them."""
    import torch

    from imgdiff.checkpoint import save_checkpoint
    from imgdiff.models import build_denoiser
    from imgdiff.tasks import default_config

    cfg = default_config(task)
    cfg["net"].update(base=8, mults=[1, 2], blocks=1, emb_dim=16)
    torch.manual_seed(seed)
    model = build_denoiser(cfg)
    save_checkpoint(path, {k: v.half() for k, v in model.state_dict().items()}, cfg)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares any size (a bomb, or 0x0) but whose data is tiny."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
