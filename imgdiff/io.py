"""Reading and writing images without losing what the user had: depth, alpha, ICC, EXIF.

Pixels travel as float32 arrays in [0, 1] (H, W, C) with C = 1 (grey) or 3 (colour); alpha is kept
apart, untouched by the model. Writes go to a temp file in the target folder and are then linked or
renamed into place, so a reader never sees half a file and an existing file is never replaced
unless asked.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import sys
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError

DEFAULT_MAX_PIXELS = 100_000_000  # ~ a 10000x10000 photo; --max-pixels raises it
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
SIXTEEN_BIT = {"PNG", "TIFF"}
INPUT_EXTS = tuple(FORMATS) + (".gif",)


@dataclass
class ImageData:
    pixels: np.ndarray  # float32 (H, W, C), C in {1, 3}, values in [0, 1]
    alpha: np.ndarray | None = None  # float32 (H, W) in [0, 1]
    bit_depth: int = 8
    icc: bytes | None = None
    exif: bytes | None = None
    source_format: str = "PNG"
    warnings: list[str] = field(default_factory=list)

    @property
    def grey(self) -> bool:
        return self.pixels.shape[2] == 1

    def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None = None) -> ImageData:
        return replace(self, pixels=pixels, alpha=self.alpha if alpha is None else alpha, warnings=[])


def _is_16bit(im: Image.Image) -> bool:
    args = im.tile[0].args if im.tile else ""
    raw = args[0] if isinstance(args, tuple) else args
    return isinstance(raw, str) and ";16" in raw


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an array, as ImageOps.exif_transpose does to an image."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, 1)[::-1],
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def _split_alpha(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if a.shape[2] in (2, 4):
        return a[..., :-1], a[..., -1]
    return a, None


@contextlib.contextmanager
def _silenced_c_stderr():
    """Point file descriptor 2 at /dev/null while C decoders run (they print their own complaints)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_image(source: Path | bytes, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageData:
    """Decode safely: dimensions are checked before any pixel is decoded."""
    label = name or str(source)
    data = source if isinstance(source, bytes) else None
    try:
        if data is None:
            data = Path(source).read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{label}: is a directory") from None
    except OSError as e:
        raise ImageError(f"{label}: cannot read ({e.strerror or e})") from None
    if not data:
        raise ImageError(f"{label}: empty file")
    notes: list[str] = []
    try:
        with warnings.catch_warnings(), _silenced_c_stderr():
            # a decoder's complaints about a damaged file (Python warnings, or libtiff printing to fd 2)
            # would be extra stderr lines: we report one error of our own instead
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            bomb_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own check below names the size and the option
            try:
                im = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = bomb_limit
            sixteen = im.mode in ("RGB", "RGBA") and _is_16bit(im)  # before getexif(), which may load
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{label}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
                    f"{max_pixels / 1e6:.0f} (raise it with --max-pixels)"
                )
            if w < 1 or h < 1:
                raise ImageError(f"{label}: image has no pixels ({w}x{h})")
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"{label}: animated image, only the first frame is used")
            exif = im.getexif()
            orientation = exif.get(0x0112, 1)
            if not isinstance(orientation, int) or not 1 <= orientation <= 8:
                notes.append(f"{label}: ignoring invalid EXIF orientation {orientation!r}")
                orientation = 1
            icc = im.info.get("icc_profile")
            if sixteen:
                arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                if arr is None or arr.dtype != np.uint16:
                    raise ImageError(f"{label}: cannot decode 16-bit image")
                arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
                arr, depth = arr.astype(np.float32) / 65535, 16
            else:
                im.load()
                arr, depth = _pil_to_float(im)
            if exif and orientation != 1:
                exif[0x0112] = 1
            exif_bytes = _exif_bytes(exif)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: not a readable image (or a decompression bomb)") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        MemoryError,
        TypeError,
        KeyError,
        IndexError,
        ZeroDivisionError,
    ) as e:
        raise ImageError(
            f"{label}: corrupt or truncated image ({str(e).splitlines()[0][:120] or type(e).__name__})"
        ) from None
    arr = _orient(arr, orientation)
    rgb, alpha = _split_alpha(arr)
    return ImageData(
        pixels=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        bit_depth=depth,
        icc=icc if isinstance(icc, bytes) and len(icc) < 4 << 20 else None,
        exif=exif_bytes,
        source_format=im.format or "PNG",
        warnings=notes,
    )


def from_pil(im: Image.Image) -> ImageData:
    """An in-memory Pillow image (Python API); orientation is the caller's business."""
    arr, depth = _pil_to_float(im)
    rgb, alpha = _split_alpha(arr)
    icc = im.info.get("icc_profile")
    return ImageData(
        pixels=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=depth,
        icc=icc if isinstance(icc, bytes) else None,
    )


def to_pil(img: ImageData) -> Image.Image:
    """8-bit (or 16-bit grey) Pillow image of the result."""
    out = Image.open(io.BytesIO(encode_image(img, "PNG")))
    out.load()
    return out


def _exif_bytes(exif: Image.Exif) -> bytes | None:
    if not exif:
        return None
    try:
        b = exif.tobytes()
    except Exception:  # a malformed EXIF block is dropped, not fatal
        return None
    return b if len(b) < 64 << 10 else None


def _pil_to_float(im: Image.Image) -> tuple[np.ndarray, int]:
    """Every Pillow mode to float (H, W, C[+alpha]); palettes, CMYK and 1-bit become RGB/grey."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        return (np.clip(a, 0, 65535) / 65535).astype(np.float32)[..., None], 16
    if mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(a, 0, 1)[..., None], 16
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...
    a = np.asarray(im, dtype=np.float32) / 255
    if a.ndim == 2:
        a = a[..., None]
    return a, 8


def output_format(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ImageError(f"{path}: unknown output format {ext or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[ext]


PNG_LEVEL = 3  # zlib level: 4x faster than Pillow's default 6 on photos for ~13 % larger files


def encode_image(img: ImageData, fmt: str, metadata: dict | None = None, quality: int = 95) -> bytes:
    """Bytes of the image in `fmt`; 16-bit kept where the format can hold it, metadata as text chunks."""
    pix = img.pixels
    channels = pix if img.alpha is None else np.concatenate([pix, img.alpha[..., None]], axis=2)
    sixteen = img.bit_depth == 16 and fmt in SIXTEEN_BIT
    if sixteen:
        q = np.round(np.clip(channels, 0, 1) * 65535).astype(np.uint16)
        if q.shape[2] == 1:
            pil = Image.fromarray(q[..., 0])  # mode I;16
        else:
            bgr = cv2.cvtColor(q, cv2.COLOR_RGBA2BGRA if q.shape[2] == 4 else cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".png" if fmt == "PNG" else ".tif", bgr)
            if not ok:
                raise ImageError("cannot encode 16-bit image")
            data = buf.tobytes()
            return _png_with_chunks(data, img, metadata) if fmt == "PNG" else data
    else:
        q = np.round(np.clip(channels, 0, 1) * 255).astype(np.uint8)
        if fmt == "JPEG" and q.shape[2] in (2, 4):
            q = q[..., :-1]  # JPEG has no alpha
        pil = Image.fromarray(q[..., 0] if q.shape[2] == 1 else q)
    out = io.BytesIO()
    kw: dict = {}
    if fmt in ("JPEG", "WEBP"):
        kw["quality"] = quality
    if fmt == "PNG":
        kw["compress_level"] = PNG_LEVEL
    else:
        if img.icc and fmt != "BMP":
            kw["icc_profile"] = img.icc
        if img.exif and fmt in ("JPEG", "WEBP", "TIFF"):
            kw["exif"] = img.exif
    pil.save(out, format=fmt, **kw)
    data = out.getvalue()
    return _png_with_chunks(data, img, metadata) if fmt == "PNG" else data


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_with_chunks(png: bytes, img: ImageData, metadata: dict | None) -> bytes:
    """Insert iCCP, eXIf and tEXt chunks right after IHDR (works for any encoder's PNG)."""
    extra = b""
    if img.icc:
        extra += _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(img.icc))
    if img.exif:
        extra += _chunk(b"eXIf", img.exif[6:] if img.exif.startswith(b"Exif\x00\x00") else img.exif)
    for key, value in (metadata or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        extra += _chunk(b"tEXt", key.encode("latin-1") + b"\x00" + text.encode("latin-1", "replace"))
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + extra + png[ihdr_end:]


def write_atomic(path: Path, data: bytes, overwrite: bool) -> None:
    """Temp file + fsync + link (no clobber) or rename (overwrite); the temp never outlives us."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".imgdiff-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name exists, atomically: never clobbers
            finally:
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def png_metadata(path_or_bytes: Path | bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (used by tests and `imgdiff` users checking provenance)."""
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    with Image.open(io.BytesIO(src)) as im:
        return {k: v for k, v in im.text.items()} if hasattr(im, "text") else {}
