"""Fuzz targets shared by the quick run in the suite (test_fuzz.py) and the long run (scripts/fuzz.py)."""

from __future__ import annotations

import io

import cv2
import numpy as np
from hypothesis import strategies as st
from PIL import Image, ImageCms

from imgdiff.errors import ImageError
from imgdiff.io import ImageData, encode_image, read_image


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (12, 9, 3), dtype=np.uint8)
    out = []
    for fmt, mode in [
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "P"),
        ("JPEG", "RGB"),
        ("GIF", "P"),
        ("TIFF", "RGB"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
        ("PNG", "I;16"),
        ("TIFF", "CMYK"),
    ]:
        im = Image.fromarray(a).convert(mode) if mode != "I;16" else Image.fromarray(a[..., 0].astype(np.uint16) * 257)
        b = io.BytesIO()
        im.save(b, format=fmt)
        out.append(b.getvalue())
    return out + _tiff_seeds(a)


def _tiff_seeds(a: np.ndarray) -> list[bytes]:
    """TIFFs with unusual layouts and tags, so mutations reach the TIFF tag parsing and the OpenCV fallback.

    (Pillow's libtiff writer cannot add an Exif sub-IFD, so the seeds with EXIF are uncompressed.)"""
    exif = Image.Exif()
    exif.update({0x010F: "fuzz-cam", 0x0112: 6, 0x013B: "artist", 0x8298: "(c)"})
    exif[0x8769] = {0x9003: "2024:01:02 03:04:05", 0x829A: 0.01}
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grey16 = a[..., 0].astype(np.uint16) * 257
    rgb = Image.fromarray(a)
    images = [
        (rgb.convert("P"), {"compression": "tiff_lzw"}),
        (rgb.convert("PA"), {}),
        (rgb.convert("LA"), {"compression": "tiff_deflate"}),
        (rgb.convert("CMYK"), {"exif": exif.tobytes()}),
        (Image.fromarray(grey16), {"exif": exif.tobytes()}),
        (Image.fromarray(grey16.astype(np.int32) * 3), {}),  # I: signed 32-bit
        (Image.fromarray(a[..., 0].astype(np.float32) / 200), {}),  # F, values past 1
        (rgb, {"exif": exif.tobytes(), "icc_profile": icc}),
        (rgb, {"compression": "jpeg"}),
    ]
    out = []
    for im, kw in images:
        b = io.BytesIO()
        im.save(b, format="TIFF", **kw)
        out.append(b.getvalue())
    floats = (a.astype(np.float32) / 200, np.dstack([a, a[..., :1]]).astype(np.float32) / 255)  # float RGB(A)
    sixteen = np.dstack([a, a[..., :1]]).astype(np.uint16) * 257  # 16-bit RGBA
    for arr in (*floats, sixteen):
        ok, buf = cv2.imencode(".tif", arr)
        out.append(buf.tobytes())
    # imgdiff's own TIFF writer: 16-bit grey + alpha (as RGBA) with EXIF and ICC
    img = ImageData(
        pixels=grey16[..., None] / 65535,
        alpha=a[..., 1] / 255,
        bit_depth=16,
        exif=exif.tobytes(),
        icc=icc[:16] + b"GRAY" + icc[20:],
    )
    out.append(encode_image(img, "TIFF"))
    return out


SEEDS = _seed_files()


@st.composite
def mutated_images(draw) -> bytes:
    """A valid small image with random byte flips, cuts and insertions."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
    return bytes(data)


images = st.one_of(mutated_images(), st.binary(max_size=512))


def check_loader(data: bytes) -> None:
    """The loader's promise: a sane ImageData or an ImageError, nothing else, on any bytes."""
    try:
        img = read_image(data, name="fuzz.bin", max_pixels=4_000_000)
    except ImageError as e:
        assert "fuzz.bin" in str(e) and "\n" not in str(e)
        return
    p = img.pixels
    assert p.ndim == 3 and p.shape[2] in (1, 3) and p.dtype == np.float32
    assert np.isfinite(p).all() and p.min() >= 0 and p.max() <= 1
    assert img.alpha is None or img.alpha.shape == p.shape[:2]


OPTIONS = [
    "--sigma",
    "--steps",
    "--seed",
    "--tile",
    "--tile-overlap",
    "--device",
    "--precision",
    "--scale",
    "--suffix",
    "--threads",
    "--max-pixels",
    "--mode",
    "--model",
    "-o",
    "--strength",
    "--detail",
    "--size",
    "--num",
]
FLAGS = ["--overwrite", "--skip-existing", "--json", "--quiet", "--recursive", "--tileable", "--help"]
VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "25",
            "auto",
            "cpu",
            "cuda",
            "fp16",
            "bf16",
            "nan",
            "inf",
            "-",
            "1e9",
            "2",
            "4",
            "real",
            "x",
            "",
            "64x32",
            "hf://a/../b.safetensors",
        ]
    ),
    st.text(max_size=8),
)


@st.composite
def argv(draw) -> list[str]:
    cmd = draw(st.sampled_from(["denoise", "upscale", "generate", "stylize", "models", "eval", "train", "bogus"]))
    args = [cmd]
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            args.append(draw(st.sampled_from(FLAGS)))
        else:
            args += [draw(st.sampled_from(OPTIONS)), draw(VALUES)]
    return args


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
HEADER_FIELDS = ["data_offsets", "dtype", "shape", "__metadata__", "config", "config.net", "config.sigma_max"]


@st.composite
def crafted_headers(draw) -> tuple[str, object]:
    """Which header field to replace, and with what JSON value (any type)."""
    return draw(st.sampled_from(HEADER_FIELDS)), draw(JSON_VALUES)


def check_checkpoint(path, field: str, value: object) -> None:
    """The checkpoint loader's promise: a model or a CheckpointError naming the file, nothing else."""
    import json
    import struct

    import torch

    from imgdiff.errors import CheckpointError
    from imgdiff.hub import load

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    cfg = json.loads(header["__metadata__"]["imgdiff"])
    if field in ("data_offsets", "dtype", "shape"):
        header[name][field] = value
    elif field == "__metadata__":
        header["__metadata__"] = value
    elif field == "config":
        header["__metadata__"]["imgdiff"] = json.dumps(value)
    else:
        cfg[field.split(".")[1]] = value
        header["__metadata__"]["imgdiff"] = json.dumps(cfg)
    body = json.dumps(header).encode()
    crafted = path.with_name("crafted.safetensors")
    crafted.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n :])
    try:
        load(str(crafted), "denoise", torch.device("cpu"))
    except CheckpointError as e:
        assert "crafted.safetensors" in str(e) and "\n" not in str(e)
