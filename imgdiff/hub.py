"""Finding and verifying checkpoints: shipped names, local paths, and `hf://org/repo/file`.

Shipped weights are listed in `weights/manifest.json` with their sha256; a file that no longer
matches is refused. Every checkpoint's own config must name the task it is loaded for.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import torch

from .checkpoint import load_tensors, read_config, read_header
from .errors import CheckpointError, UnknownModel, UsageError
from .models import ARCHITECTURE, Denoiser, build_denoiser

HF_PREFIX = "hf://"
_HF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def weights_dir() -> Path:
    """`weights/` of a source checkout, or the copy installed inside the package."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "weights", here / "weights"):
        if (cand / "manifest.json").is_file():
            return cand
    raise CheckpointError("shipped weights not found (weights/manifest.json is missing from this install)")


@lru_cache(maxsize=1)
def manifest() -> dict:
    path = weights_dir() / "manifest.json"
    try:
        return json.loads(path.read_text())["models"]
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_hf(spec: str) -> tuple[str, str, str | None]:
    """hf://org/repo[@revision]/path/file.safetensors -> (repo_id, filename, revision)."""
    rest = spec[len(HF_PREFIX) :]
    parts = rest.split("/")
    if len(parts) < 3:
        raise CheckpointError(f"{spec}: expected hf://org/repo/file.safetensors")
    org, repo, *path = parts
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    for p in (org, repo, *path):
        if not _HF_PART.match(p) or p in (".", ".."):
            raise CheckpointError(f"{spec}: invalid path component {p!r}")
    filename = str(PurePosixPath(*path))
    if not filename.endswith(".safetensors"):
        raise CheckpointError(f"{spec}: only .safetensors checkpoints are loaded")
    return f"{org}/{repo}", filename, revision


def resolve(spec: str) -> tuple[Path, str | None]:
    """A checkpoint file for spec, and the sha256 it must have (None when nothing vouches for it)."""
    if spec.startswith(HF_PREFIX):
        repo_id, filename, revision = parse_hf(spec)
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
        from huggingface_hub.utils import disable_progress_bars
        from huggingface_hub.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # its retry warnings would be a dozen stderr lines
        if not sys.stderr.isatty():
            disable_progress_bars()
        if not constants.HF_HUB_OFFLINE and not hub_reachable(constants.ENDPOINT):
            # without this, an unreachable hub costs ~26 s of retries before the cache is consulted
            cached = try_to_load_from_cache(repo_id, filename, revision=revision)
            if isinstance(cached, str):
                return Path(cached), None
            raise CheckpointError(
                f"{spec}: not in the Hugging Face cache and {urlsplit(constants.ENDPOINT).hostname} is unreachable"
            )
        try:
            return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision)), None
        except LocalEntryNotFoundError:
            raise CheckpointError(
                f"{spec}: not in the Hugging Face cache and the hub is unreachable (HF_HUB_OFFLINE or no network)"
            ) from None
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise CheckpointError(f"{spec}: download failed ({str(e).splitlines()[0]})") from None
    models = manifest()
    if spec in models:
        entry = models[spec]
        return weights_dir() / entry["file"], entry["sha256"]
    path = Path(spec)
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise UnknownModel(f"{spec}: no such checkpoint file")
        return path, None
    raise UnknownModel(f"{spec}: unknown model (known: {', '.join(sorted(models))}; or give a .safetensors path)")


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """One TCP connect to the hub: a closed network fails in milliseconds here, not after retries."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


@dataclass
class LoadedModel:
    name: str
    config: dict
    denoiser: Denoiser
    sha256: str

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def style_look(self) -> tuple[dict | None, np.ndarray | None]:
        """(palette, texture statistics) a learnt style's model carries in its config
        (train/style.py writes them); None for what it was saved without, and for plain models."""
        from .texture import decode_stats  # OpenCV: only styled models need it

        look = self.config.get("style") or {}
        return look.get("colours"), decode_stats(look.get("texture"))


def load(spec: str, task: str, device: torch.device) -> LoadedModel:
    """Resolve, verify, check the task, build and load: every failure is a CheckpointError."""
    path, expected = resolve(spec)
    digest = sha256_file(path)
    if expected and digest != expected:
        raise CheckpointError(
            f"{path}: sha256 mismatch (file altered or corrupt); expected {expected[:12]}…, got {digest[:12]}…"
        )
    header = read_header(path)
    cfg = read_config(path, header)
    if cfg.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{path}: architecture {cfg.get('architecture')!r} is not {ARCHITECTURE!r}")
    if cfg.get("task") != task:
        raise CheckpointError(f"{path}: a {cfg.get('task')!r} checkpoint cannot be used for {task!r}")
    check_config_values(path, cfg)
    check_tensors(path, cfg, header)
    name = spec if spec in manifest_names() else path.name
    try:
        return from_tensors(name, cfg, load_tensors(path, header_checked=True), digest, device)
    except CheckpointError:
        raise
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: tensors do not fit the config ({str(e).splitlines()[0][:160]})") from None


def from_tensors(
    name: str, cfg: dict, tensors: dict[str, torch.Tensor], digest: str, device: torch.device
) -> LoadedModel:
    """The inference model from a checked config and its tensors (a file's, or a learnt style's
    sent to a Ray worker): fp32 weights, frozen, channels-last on the CPU."""
    with torch.device("meta"):  # the loaded tensors replace the parameters: no random init to throw away
        model = build_denoiser(cfg)
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True, assign=True)
    model = model.to(device).eval().requires_grad_(False)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return LoadedModel(name=name, config=cfg, denoiser=model, sha256=digest)


WEIGHT_DTYPES = {"F16", "BF16", "F32"}
# the config fields the pipelines compute with, and what each must be
CONFIG_NUMBERS = ("sigma_data", "sigma_min", "sigma_max")


def check_config_values(path: Path, cfg: dict) -> None:
    """Types and ranges of the config values used at inference, so a crafted config is one error
    line here rather than a traceback in the middle of a batch."""
    for key in CONFIG_NUMBERS:
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise CheckpointError(f"{path}: config {key} must be a positive number, not {v!r}")
    if not isinstance(cfg.get("net"), dict):
        raise CheckpointError(f"{path}: config net must be a JSON object")
    if "scale" in cfg and cfg["scale"] not in (1, 2, 4):
        raise CheckpointError(f"{path}: config scale must be 1, 2 or 4, not {cfg['scale']!r}")
    if "size" in cfg and not (isinstance(cfg["size"], int) and 8 <= cfg["size"] <= 4096):
        raise CheckpointError(f"{path}: config size must be a whole number of pixels, not {cfg['size']!r}")
    v = cfg.get("int8_min_channels", 1)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise CheckpointError(f"{path}: config int8_min_channels must be a positive whole number, not {v!r}")
    if not isinstance(cfg.get("degradation", "bicubic"), str):
        raise CheckpointError(f"{path}: config degradation must be a name")


def check_tensors(path: Path, cfg: dict, header: dict | None = None) -> None:
    """Compare the header's names, shapes and dtypes with the network the config describes, built on
    the meta device: a config asking for a giant network costs nothing, and nothing is loaded yet."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_denoiser(cfg).state_dict().items()}
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as e:
        raise CheckpointError(f"{path}: invalid network config ({str(e).splitlines()[0][:120]})") from None
    header = {k: v for k, v in (read_header(path) if header is None else header).items() if k != "__metadata__"}
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not fit the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, info in header.items():
        if info["dtype"] not in WEIGHT_DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {info['dtype']}, not a float type")
        if tuple(info["shape"]) != expected[name]:
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {info['shape']}, the config needs {list(expected[name])}"
            )


def check_restore_model(model: LoadedModel, scale: int, degradation: str) -> None:
    """The one check, for the API and the CLI alike, that a restore checkpoint fits the job."""
    got = (int(model.config.get("scale", 0)), model.config.get("degradation", "bicubic"))
    if got != (scale, degradation):
        raise UsageError(f"{model.name}: a model for x{got[0]} {got[1]} inputs cannot do x{scale} {degradation}")


def manifest_names() -> set[str]:
    try:
        return set(manifest())
    except CheckpointError:
        return set()


def verify_all() -> list[tuple[str, bool, str]]:
    """(name, ok, message) for every shipped checkpoint."""
    rows = []
    for name, entry in sorted(manifest().items()):
        path = weights_dir() / entry["file"]
        if not path.is_file():
            rows.append((name, False, f"{path}: missing"))
            continue
        digest = sha256_file(path)
        rows.append(
            (name, digest == entry["sha256"], "ok" if digest == entry["sha256"] else f"{path}: sha256 mismatch")
        )
    return rows
