"""safetensors checkpoints that carry their own config in `__metadata__`.

The header is validated by hand before safetensors touches the file, so a truncated file or a
header that claims gigabytes is refused before any large allocation.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

FORMAT = "imgdiff-checkpoint-1"
MAX_HEADER = 8 << 20  # real headers are a few kB; refuse anything absurd before reading it
DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "U8": 1, "I64": 8, "I32": 4, "BOOL": 1}


def read_header(path: Path | str) -> dict:
    """Parse and sanity-check the safetensors header without loading tensors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise CheckpointError(f"{path}: corrupt safetensors header (claims {n} bytes, file has {size})")
            header = json.loads(f.read(n))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise CheckpointError(f"{path}: corrupt safetensors header (__metadata__ is not a map of strings)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        want = _tensor_bytes(info)
        if want is None:
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry")
        lo, hi = info["data_offsets"]
        if hi - lo != want:
            raise CheckpointError(f"{path}: tensor {name!r} size does not match its shape")
        end = max(end, hi)
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated (tensors end past the end of the file)")
    return header


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _tensor_bytes(info: object) -> int | None:
    """Bytes a header entry's dtype and shape need, or None if any field has the wrong JSON type
    (offsets as strings, a shape of floats, a dtype that is a list...)."""
    if not isinstance(info, dict):
        return None
    offsets, dtype, shape = info.get("data_offsets"), info.get("dtype"), info.get("shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(v) for v in offsets)):
        return None
    if offsets[0] > offsets[1] or not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        return None
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        return None
    want = DTYPE_BYTES[dtype]
    for d in shape:
        want *= d
    return want


def read_config(path: Path, header: dict | None = None) -> dict:
    """The JSON config stored in the checkpoint's metadata (pass `header` if already read)."""
    meta = (read_header(path) if header is None else header).get("__metadata__") or {}
    try:
        cfg = json.loads(meta["imgdiff"])
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not an imgdiff checkpoint (no config in its metadata)") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: not an imgdiff checkpoint (its config is not a JSON object)")
    if cfg.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {cfg.get('format')!r}")
    return cfg


def load_tensors(path: Path, header_checked: bool = False) -> dict[str, torch.Tensor]:
    if not header_checked:
        read_header(path)
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot load tensors ({e})") from None


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], config: dict, extra: dict | None = None) -> None:
    """Write atomically: a temp file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"imgdiff": json.dumps({"format": FORMAT, **config}, sort_keys=True)}
    meta.update(extra or {})
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves nothing behind
