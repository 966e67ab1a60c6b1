"""Reading and writing images without losing what the user had: depth, alpha, ICC, EXIF.

Pixels travel as float32 arrays in [0, 1] (H, W, C) with C = 1 (grey) or 3 (colour); alpha is kept
apart, untouched by the model. Writes go to a temp file in the target folder and are then linked or
renamed into place, so a reader never sees half a file and an existing file is never replaced
unless asked.

Metadata is copied, never the container: from EXIF (or a TIFF's first IFD) only descriptive tags
and the Exif/GPS sub-IFDs travel, so an input's layout (BitsPerSample, Compression, Photometric,
StripOffsets, SampleFormat, ColorMap ...) can never be stamped onto output pixels of another
layout; an ICC profile travels only when its colour space is that of the pixels written.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import re
import secrets
import select
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

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
ALPHA = {"PNG", "WEBP", "TIFF"}  # BMP's 32-bit alpha is ignored by most readers (Pillow included)
INPUT_EXTS = tuple(FORMATS) + (".gif",)
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")

# First-IFD tags that describe the picture rather than how its bytes are laid out; the only ones copied.
DESCRIPTIVE_TAGS = frozenset(
    {
        0x010D,  # DocumentName
        0x010E,  # ImageDescription
        0x010F,  # Make
        0x0110,  # Model
        0x0112,  # Orientation (always reset to 1: pixels are written upright)
        0x011A,  # XResolution
        0x011B,  # YResolution
        0x011D,  # PageName
        0x0128,  # ResolutionUnit
        0x0131,  # Software
        0x0132,  # DateTime
        0x013B,  # Artist
        0x013C,  # HostComputer
        0x4746,  # Rating
        0x4749,  # RatingPercent
        0x8298,  # Copyright
        0x9C9B,  # XPTitle
        0x9C9C,  # XPComment
        0x9C9D,  # XPAuthor
        0x9C9E,  # XPKeywords
        0x9C9F,  # XPSubject
    }
)
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
# Exif sub-IFD tags that describe the old pixel grid, stale after an upscale
STALE_EXIF_TAGS = frozenset({0xA002, 0xA003})  # PixelXDimension, PixelYDimension


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


def to_u8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] as the 8-bit values a file would hold (clipped, rounded)."""
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def _rawmode(im: Image.Image) -> str:
    """The decoder's raw mode (e.g. 'RGB;16B', 'LA;16B'); read before loading, which clears the tile."""
    args = im.tile[0].args if im.tile else ""
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


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
            arr, depth, exif, icc, fmt = _decode(data, label, max_pixels, notes)
            # read after decoding: Pillow's TIFF loader applies the orientation itself and drops the tag
            orientation = exif.get(0x0112, 1)
            if not isinstance(orientation, int) or not 1 <= orientation <= 8:
                notes.append(f"{label}: ignoring invalid EXIF orientation {orientation!r}")
                orientation = 1
            exif_bytes = _clean_exif(exif)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: not a readable image (or a decompression bomb)") from None
    except _decode_errors() as e:
        raise ImageError(
            f"{label}: corrupt or truncated image ({str(e).splitlines()[0][:120] or type(e).__name__})"
        ) from None
    arr = _orient(arr, orientation)
    rgb, alpha = _split_alpha(arr)
    return ImageData(
        pixels=np.ascontiguousarray(rgb, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        bit_depth=depth,
        icc=_matching_icc(icc, rgb.shape[2], label, notes),
        exif=exif_bytes,
        source_format=fmt,
        warnings=notes,
    )


def describe_pixels(n: int) -> str:
    """'12.3 megapixels', or the exact count below a tenth of one (a limit of 100 is not '0 megapixels')."""
    return f"{n / 1e6:.1f} megapixels" if n >= 100_000 else f"{n} pixels"


def _check_size(label: str, w: object, h: object, max_pixels: int) -> None:
    if not isinstance(w, int) or not isinstance(h, int):
        raise ImageError(f"{label}: not a readable image (no width and height)")
    if w * h > max_pixels:
        raise ImageError(
            f"{label}: {w}x{h} is {describe_pixels(w * h)}, over the limit of "
            f"{describe_pixels(max_pixels)} (raise it with --max-pixels)"
        )
    if w < 1 or h < 1:
        raise ImageError(f"{label}: image has no pixels ({w}x{h})")


# what a corrupt file makes the decoders raise (OpenCV's own error is added below once OpenCV is in)
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
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
)


def _decode_errors() -> tuple[type[BaseException], ...]:
    """The decoders' errors. OpenCV is imported only for the files Pillow cannot decode (16-bit colour,
    float TIFF), which keeps ~30 ms of import off every 8-bit call; its error exists once it is in."""
    cv2 = sys.modules.get("cv2")
    return _DECODE_ERRORS if cv2 is None else (*_DECODE_ERRORS, cv2.error)


def _decode(
    data: bytes, label: str, max_pixels: int, notes: list[str]
) -> tuple[np.ndarray, int, Image.Exif, bytes | None, str]:
    """Pixels (float, alpha last), depth, raw EXIF, ICC and format of an encoded image."""
    bomb_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own check names the size and the option
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data[:4] not in TIFF_MAGIC:
            raise
        return _decode_tiff_cv2(data, label, max_pixels, notes)  # e.g. float RGB, which Pillow cannot open
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit
    raw = _rawmode(im)  # before getexif(), which may load
    sixteen = im.mode in ("RGB", "RGBA") and ";16" in raw
    _check_size(label, *im.size, max_pixels)
    if getattr(im, "n_frames", 1) > 1:
        notes.append(f"{label}: animated image, only the first frame is used")
    exif = im.getexif()
    icc = im.info.get("icc_profile")
    if sixteen:
        import cv2

        arr = cv2.imdecode(np.frombuffer(_cv2_ready(data), np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
            raise ImageError(f"{label}: cannot decode 16-bit image")
        if raw.startswith("LA"):  # grey + alpha, which Pillow (and so `im.mode`) calls RGBA
            arr = arr[..., [0, 3]]
        else:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        return arr.astype(np.float32) / 65535, 16, exif, icc, im.format or "PNG"
    im.load()
    im, icc = _colour_managed(im, icc, label, notes)
    arr, depth = _pil_to_float(im, label, notes)
    return arr, depth, exif, icc, im.format or "PNG"


SAMPLE_KINDS = {1: "unsigned integer", 2: "signed integer", 3: "floating-point", 4: "undefined"}


def _decode_tiff_cv2(
    data: bytes, label: str, max_pixels: int, notes: list[str]
) -> tuple[np.ndarray, int, Image.Exif, bytes | None, str]:
    """TIFF layouts Pillow cannot open (float RGB(A), 16-bit grey+alpha ...) through OpenCV's libtiff."""
    exif = Image.Exif()
    exif.load(data)  # a TIFF's first IFD is an EXIF block: sizes, sample layout and the tags we copy
    if 256 not in exif:
        raise ImageError(f"{label}: not a readable image (a TIFF without an image directory)")
    _check_size(label, exif.get(256), exif.get(257), max_pixels)
    import cv2

    arr = cv2.imdecode(np.frombuffer(_cv2_ready(data), np.uint8), cv2.IMREAD_UNCHANGED)
    bits, samples, photometric = _tag_int(exif.get(258, 1)), _tag_int(exif.get(277, 1)), _tag_int(exif.get(262))
    kind = SAMPLE_KINDS.get(_tag_int(exif.get(339, 1)) or 0, "unknown")
    compression = _tag_int(exif.get(259, 1))
    show = ["?" if v is None else v for v in (samples, bits, photometric, compression)]
    why = (
        f"{label}: cannot decode this TIFF ({show[0]} samples of {show[1]}-bit {kind}, "
        f"photometric {show[2]}, compression {show[3]})"
    )
    if arr is None or arr.ndim not in (2, 3):
        raise ImageError(why)
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[2]
    grey_spread = photometric in (0, 1) and samples in (1, 2) and c == samples + 2
    if (c != samples and not grey_spread) or bits != arr.dtype.itemsize * 8:
        raise ImageError(why)  # OpenCV decoded it differently (e.g. 16-bit grey + alpha as 8-bit grey)
    if grey_spread:  # grey that the decoder spread over B, G, R
        arr = arr[..., [0, 3]] if c == 4 else arr[..., :1]
    elif c == 3:
        arr = arr[..., ::-1]
    elif c == 4:
        arr = arr[..., [2, 1, 0, 3]]
    if arr.dtype.kind == "f":
        a, depth = _unit_float(arr, label, notes), 16
    elif arr.dtype == np.uint16:
        a, depth = arr.astype(np.float32) / 65535, 16
    elif arr.dtype == np.uint8:
        a, depth = arr.astype(np.float32) / 255, 8
    else:
        raise ImageError(why)
    if a.shape[2] not in (1, 2, 3, 4):
        raise ImageError(why)
    icc = exif.get(34675)
    return a, depth, exif, icc if isinstance(icc, bytes) else None, "TIFF"


def _cv2_ready(data: bytes) -> bytes:
    """A TIFF with its Orientation tag set to 1 (other files as they are) for OpenCV.

    OpenCV's TIFF decoder applies the orientation itself; we apply it once, to every decoder's output."""
    if data[:4] not in TIFF_MAGIC:
        return data
    order = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        for i in range(count):
            at = offset + 2 + 12 * i
            tag, kind = struct.unpack_from(order + "HH", data, at)
            if tag == 0x0112 and kind == 3:  # SHORT, held in the entry itself
                out = bytearray(data)
                struct.pack_into(order + "H", out, at + 8, 1)
                return bytes(out)
    except struct.error:  # a damaged directory: the decoders will say so
        pass
    return data


def _tag_int(v: object) -> int | None:
    """A TIFF tag's (first) integer value; None for anything else a damaged file may hold."""
    v = v[0] if isinstance(v, tuple) and v else v
    return v if isinstance(v, int) else None


def _unit_float(a: np.ndarray, label: str | None = None, notes: list[str] | None = None) -> np.ndarray:
    """Float samples (scene-linear or 0..1) clipped to 0..1; NaN is black, +inf white."""
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if notes is not None and a.size and (a.min() < 0 or a.max() > 1):
        notes.append(f"{label}: floating-point samples outside 0..1 (from {a.min():.3g} to {a.max():.3g}) clipped")
    return np.clip(a, 0, 1)


def from_pil(im: Image.Image) -> ImageData:
    """An in-memory Pillow image (Python API); orientation is the caller's business."""
    notes: list[str] = []
    icc = im.info.get("icc_profile")
    im, icc = _colour_managed(im, icc if isinstance(icc, bytes) else None, "image", notes)
    arr, depth = _pil_to_float(im)
    rgb, alpha = _split_alpha(arr)
    return ImageData(
        pixels=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=depth,
        icc=_matching_icc(icc, rgb.shape[2], "image", notes),
        warnings=notes,
    )


def to_pil(img: ImageData) -> Image.Image:
    """8-bit (or 16-bit grey) Pillow image of the result."""
    out = Image.open(io.BytesIO(encode_image(img, "PNG")))
    out.load()
    return out


def _clean_exif(exif: Image.Exif) -> bytes | None:
    """Only real EXIF: descriptive first-IFD tags and the Exif/GPS sub-IFDs, never layout tags.

    A TIFF's EXIF (as Pillow reads it) is the file's whole first IFD; copying that would stamp the
    input's BitsPerSample, Photometric, SampleFormat, ColorMap ... onto pixels of another layout."""
    if not exif:
        return None
    try:
        clean = Image.Exif()
        for tag, value in exif.items():
            if tag in DESCRIPTIVE_TAGS:
                clean[tag] = 1 if tag == 0x0112 else value  # orientation has been applied (or ignored)
        sub = {k: v for k, v in exif.get_ifd(EXIF_IFD).items() if k not in STALE_EXIF_TAGS}
        if INTEROP_IFD in sub:
            interop = exif.get_ifd(INTEROP_IFD)
            if interop:
                sub[INTEROP_IFD] = interop
            else:
                del sub[INTEROP_IFD]
        if sub:
            clean[EXIF_IFD] = sub
        gps = exif.get_ifd(GPS_IFD)
        if gps:
            clean[GPS_IFD] = gps
        if not clean:
            return None
        b = clean.tobytes()
    except Exception:  # a malformed EXIF block is dropped, not fatal
        return None
    return b if len(b) < 64 << 10 else None


def _exif_tags(exif: bytes | None) -> dict[int, object]:
    """The copyable tags of an EXIF block (sub-IFDs as dicts), for the TIFF writer's first IFD."""
    if not exif:
        return {}
    try:
        e = Image.Exif()
        e.load(exif)
        tags: dict[int, object] = {k: v for k, v in e.items() if k in DESCRIPTIVE_TAGS}
        sub = {k: v for k, v in e.get_ifd(EXIF_IFD).items() if k not in STALE_EXIF_TAGS and k != INTEROP_IFD}
        if sub:
            tags[EXIF_IFD] = sub
        gps = e.get_ifd(GPS_IFD)
        if gps:
            tags[GPS_IFD] = gps
        return tags
    except Exception:  # EXIF from an API caller may be anything: dropped, not fatal
        return {}


def _icc_space(icc: bytes | None) -> str | None:
    """The colour space an embeddable ICC profile's header declares ('RGB', 'GRAY', 'CMYK', 'Lab' ...).

    None when it is no profile, or one that cannot describe an image (device link, abstract, named)."""
    if not isinstance(icc, bytes) or len(icc) < 128 or icc[36:40] != b"acsp":
        return None
    if icc[12:16] not in (b"mntr", b"scnr", b"prtr", b"spac"):
        return None
    return icc[16:20].decode("latin-1").strip()


def _matching_icc(icc: object, channels: int, label: str, notes: list[str]) -> bytes | None:
    """The profile if it describes these pixels (GRAY for grey, RGB for colour); else dropped, said so."""
    if not isinstance(icc, bytes) or not icc:
        return None
    want = "GRAY" if channels == 1 else "RGB"
    space = _icc_space(icc)
    if len(icc) >= 4 << 20:
        notes.append(f"{label}: colour profile dropped: over 4 MiB")
    elif space is None:
        notes.append(f"{label}: colour profile dropped: not an image ICC profile")
    elif space != want:
        pixels = "grey" if channels == 1 else "RGB"
        notes.append(f"{label}: colour profile dropped: a {space} profile cannot describe {pixels} pixels")
    else:
        return icc
    return None


@functools.lru_cache(maxsize=1)
def _srgb() -> tuple[object, bytes]:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return profile, profile.tobytes()


def _colour_managed(
    im: Image.Image, icc: bytes | None, label: str, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    """CMYK pixels with a CMYK profile become sRGB through it (littlecms), tagged sRGB.

    Without a usable CMYK profile CMYK is converted naively and any profile is dropped, so a CMYK
    (or mismatched) profile never ends up over RGB pixels."""
    if im.mode != "CMYK" or not icc:
        return im, icc
    space = _icc_space(icc)
    if space != "CMYK":
        notes.append(f"{label}: colour profile dropped: a {space or 'unusable'} profile cannot describe CMYK pixels")
        return im, None
    from PIL import ImageCms

    try:
        srgb, srgb_bytes = _srgb()
        out = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        notes.append(
            f"{label}: colour profile dropped: cannot convert CMYK through it "
            f"({str(e).splitlines()[0][:80] if str(e) else type(e).__name__}); colours converted without it"
        )
        return im, None
    return out, srgb_bytes


def _pil_to_float(im: Image.Image, label: str | None = None, notes: list[str] | None = None) -> tuple[np.ndarray, int]:
    """Every Pillow mode to float (H, W, C[+alpha]); palettes, CMYK and 1-bit become RGB/grey."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        return (np.clip(a, 0, 65535) / 65535).astype(np.float32)[..., None], 16
    if mode == "F":
        return _unit_float(np.asarray(im, dtype=np.float32), label, notes)[..., None], 16
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


def _grey_as_rgba(img: ImageData, fmt: str) -> bool:
    """16-bit grey + alpha bound for TIFF: Pillow cannot read that layout, so it is written as RGBA, R = G = B."""
    return fmt == "TIFF" and img.grey and img.alpha is not None and img.bit_depth == 16


def _stored_grey(img: ImageData, fmt: str) -> bool:
    """Whether `fmt` will hold `img` as grey (which decides the profile that may describe it)."""
    return img.grey and fmt != "WEBP" and not _grey_as_rgba(img, fmt)  # WebP has no grey: Pillow writes RGB


def _icc_for(img: ImageData, fmt: str) -> bytes | None:
    """The profile to write, only if its colour space is that of the pixels `fmt` will hold."""
    if not img.icc or fmt == "BMP":
        return None
    return img.icc if _icc_space(img.icc) == ("GRAY" if _stored_grey(img, fmt) else "RGB") else None


def lost_on_write(img: ImageData, fmt: str) -> list[str]:
    """What writing `img` as `fmt` will lose, one warning each (no file name: the caller adds it).

    encode_image returns bytes only, so a caller that wants to say what was lost asks here."""
    lost = []
    if img.alpha is not None and fmt not in ALPHA and img.alpha.size and img.alpha.min() < 1 - 0.5 / 255:
        lost.append(f"alpha channel dropped: {fmt} has no alpha")
    if img.bit_depth == 16 and fmt not in SIXTEEN_BIT:
        lost.append(f"16-bit reduced to 8-bit: {fmt} holds 8 bits")
    if img.icc and _icc_for(img, fmt) is None:
        if fmt == "BMP":
            lost.append("colour profile dropped: BMP output carries none")
        elif _icc_space(img.icc) is None:
            lost.append("colour profile dropped: not an image ICC profile")
        else:
            pixels = "grey" if _stored_grey(img, fmt) else "RGB"
            space = _icc_space(img.icc)
            lost.append(f"colour profile dropped: a {space} profile cannot describe the {pixels} pixels {fmt} holds")
    if img.exif and fmt == "BMP":
        lost.append("EXIF dropped: BMP has no EXIF")
    return lost


def encode_image(img: ImageData, fmt: str, metadata: dict | None = None, quality: int = 95) -> bytes:
    """Bytes of the image in `fmt`; 16-bit kept where the format can hold it, metadata as text chunks.

    What the format cannot hold (alpha in JPEG/BMP, 16 bits in JPEG/WebP/BMP, a profile that does not
    match the written pixels) is left out; lost_on_write says which."""
    pix = img.pixels
    channels = pix if img.alpha is None or fmt not in ALPHA else np.concatenate([pix, img.alpha[..., None]], axis=2)
    icc = _icc_for(img, fmt)
    sixteen = img.bit_depth == 16 and fmt in SIXTEEN_BIT
    scale, dtype = (65535, np.uint16) if sixteen else (255, np.uint8)
    q = np.round(np.clip(channels, 0, 1) * scale).astype(dtype)
    if fmt == "TIFF":
        return _tiff_bytes(q[..., [0, 0, 0, 1]] if _grey_as_rgba(img, fmt) else q, icc, img.exif)
    if sixteen:  # PNG
        if q.shape[2] == 2:
            data = _png_bytes(q)  # 16-bit grey + alpha: neither Pillow nor OpenCV writes it
        elif q.shape[2] == 1:
            out = io.BytesIO()
            Image.fromarray(q[..., 0]).save(out, format="PNG", compress_level=PNG_LEVEL)  # mode I;16
            data = out.getvalue()
        else:
            import cv2

            bgr = cv2.cvtColor(q, cv2.COLOR_RGBA2BGRA if q.shape[2] == 4 else cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".png", bgr)
            if not ok:
                raise ImageError("cannot encode 16-bit image")
            data = buf.tobytes()
        return _png_with_chunks(data, img, metadata, icc)
    pil = Image.fromarray(q[..., 0] if q.shape[2] == 1 else q)
    out = io.BytesIO()
    kw: dict = {}
    if fmt in ("JPEG", "WEBP"):
        kw["quality"] = quality
    if fmt == "PNG":
        kw["compress_level"] = PNG_LEVEL
    else:
        if icc:
            kw["icc_profile"] = icc
        if img.exif and fmt in ("JPEG", "WEBP"):
            kw["exif"] = img.exif
    pil.save(out, format=fmt, **kw)
    data = out.getvalue()
    return _png_with_chunks(data, img, metadata, icc) if fmt == "PNG" else data


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_with_chunks(png: bytes, img: ImageData, metadata: dict | None, icc: bytes | None) -> bytes:
    """Insert iCCP, eXIf and tEXt chunks right after IHDR (works for any encoder's PNG)."""
    extra = b""
    if icc:
        extra += _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if img.exif:
        extra += _chunk(b"eXIf", img.exif[6:] if img.exif.startswith(b"Exif\x00\x00") else img.exif)
    for key, value in (metadata or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        extra += _chunk(b"tEXt", key.encode("latin-1") + b"\x00" + text.encode("latin-1", "replace"))
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _png_bytes(q: np.ndarray) -> bytes:
    """A plain PNG of uint8/uint16 (H, W, C) samples, C in 1..4, each row 'Up'-filtered."""
    h, w, c = q.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = q.astype(">u2" if q.dtype == np.uint16 else np.uint8).view(np.uint8).reshape(h, -1)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps, as the filter is defined
    raw = np.hstack([np.full((h, 1), 2, np.uint8), up]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, q.dtype.itemsize * 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, PNG_LEVEL))
        + _chunk(b"IEND", b"")
    )


TIFF_STRIP_BYTES = 1 << 16  # uncompressed bytes per strip, as libtiff's writers do


def _tiff_bytes(q: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    """A baseline TIFF of uint8/uint16 (H, W, C) samples whose every layout tag is ours.

    Deflate with horizontal prediction; ICC and the copyable EXIF tags (sub-IFDs kept) go into the
    first IFD."""
    h, w, c = q.shape
    bits = q.dtype.itemsize * 8
    le = q.astype("<u2" if bits == 16 else np.uint8)
    pred = le.copy()
    pred[:, 1:] -= le[:, :-1]  # TIFF predictor 2, per sample; unsigned arithmetic wraps as defined
    rows = max(1, TIFF_STRIP_BYTES // (w * c * q.dtype.itemsize))
    strips = [zlib.compress(pred[y : y + rows].tobytes(), PNG_LEVEL) for y in range(0, h, rows)]
    ifd = TiffImagePlugin.ImageFileDirectory_v2()  # little-endian
    for tag, value in _exif_tags(exif).items():
        with contextlib.suppress(Exception):  # a tag Pillow cannot type is dropped, not fatal
            ifd[tag] = value
    if 0x011A not in ifd or 0x011B not in ifd:  # baseline TIFF requires a resolution
        ifd[0x011A], ifd[0x011B], ifd[0x0128] = 72.0, 72.0, 2
    if icc:
        ifd[34675] = icc
    grey = c in (1, 2)
    ifd[256], ifd[257] = w, h  # ImageWidth, ImageLength
    ifd[258] = (bits,) * c  # BitsPerSample
    ifd[259] = 8  # Compression: Adobe Deflate
    ifd[262] = 1 if grey else 2  # Photometric: BlackIsZero / RGB
    ifd[277] = c  # SamplesPerPixel
    ifd[278] = rows  # RowsPerStrip
    ifd[284] = 1  # PlanarConfiguration: chunky
    ifd[317] = 2  # Predictor: horizontal differencing
    ifd[339] = (1,) * c  # SampleFormat: unsigned integer
    if c in (2, 4):
        ifd[338] = (2,)  # ExtraSamples: unassociated alpha
    ifd[279] = tuple(len(s) for s in strips)  # StripByteCounts
    # StripOffsets are relative to the end of the IFD: Pillow adds that offset when serialising
    ifd[273] = tuple(int(x) for x in np.cumsum([0] + [len(s) for s in strips[:-1]]))
    head = b"II*\x00" + struct.pack("<I", 8)
    return head + ifd.tobytes(8) + b"".join(strips)


TEMP_PREFIX = ".imgdiff-"
TEMP_SUFFIX = ".tmp"
TEMP_NAME_LENGTH = len(TEMP_PREFIX) + 8 + len(TEMP_SUFFIX)  # 21: fits any folder, whatever the target's name
_TEMP_NAME = re.compile(r"\.imgdiff-[0-9a-f]{8}\.tmp")
_OLD_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.imgdiff-tmp", re.DOTALL)  # before 21-character names


def is_temp_name(name: str) -> bool:
    """Whether a file name is a write_atomic temp (this release's or an earlier one's), which only a
    killed process leaves behind. A run still in progress in the same folder has such temps too."""
    return bool(_TEMP_NAME.fullmatch(name) or _OLD_TEMP_NAME.fullmatch(name))


def _open_temp(folder: Path) -> tuple[int, str]:
    """A new, private, fixed-length temp file in `folder` (a target name of 255 bytes has no room for more)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def write_atomic(path: Path, data: bytes, overwrite: bool) -> None:
    """Temp file + fsync + link (no clobber) or rename (overwrite); the temp never outlives us."""
    path = Path(path)
    fd, tmp = _open_temp(path.parent)
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
    """All of `data` to stdout, or an OSError (BrokenPipeError when the reader went away).

    os.write to a pipe may take only part of the bytes (or be interrupted), so it loops until
    everything is written; text already printed through sys.stdout goes out first."""
    stream = sys.stdout
    if stream is None:
        raise OSError(errno.EBADF, "there is no stdout")
    stream.flush()
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (a test runner's capture)
        stream.buffer.write(data)
        stream.buffer.flush()
        return
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:  # a non-blocking stdout inherited from the parent: wait until it drains
            select.select([], [fd], [])
            continue
        if n <= 0:
            raise OSError(errno.EIO, "stdout accepted no bytes")
        view = view[n:]


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal, where image bytes would garble the screen instead of reaching a file."""
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def png_metadata(path_or_bytes: Path | bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG (used by tests and `imgdiff` users checking provenance)."""
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    with Image.open(io.BytesIO(src)) as im:
        return {k: v for k, v in im.text.items()} if hasattr(im, "text") else {}
