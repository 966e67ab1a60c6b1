"""Every input format x mode through every output format keeps its family, depth and pixels (issue 13).

Also: only real EXIF and matching ICC profiles are copied, CMYK goes through its profile, float
TIFFs are read, temp names fit any folder, stdout writes are complete, and losses are reported.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from imgdiff.errors import ImageError
from imgdiff.io import (
    TEMP_NAME_LENGTH,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    ImageData,
    encode_image,
    is_temp_name,
    lost_on_write,
    read_image,
    stdout_is_terminal,
    write_atomic,
    write_stdout,
)
from tests.conftest import ROOT

H, W = 9, 12
OUTPUTS = ["PNG", "JPEG", "WEBP", "TIFF", "BMP"]
LOSSY = {"JPEG", "WEBP"}
LAYOUT_TAGS = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 320, 338, 339}


def _planes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth float colour, grey and alpha planes (lossy codecs stay close on them)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    rgb = np.dstack([0.1 + 0.8 * x / (W - 1), 0.1 + 0.8 * y / (H - 1), 0.9 - 0.6 * (x + y) / (W + H - 2)])
    grey = 0.05 + 0.9 * (x + 2 * y) / (W - 1 + 2 * (H - 1))
    alpha = 0.25 + 0.7 * x / (W - 1)
    return rgb, grey, alpha


def _u8(a: np.ndarray) -> np.ndarray:
    return np.round(a * 255).astype(np.uint8)


def _u16(a: np.ndarray) -> np.ndarray:
    return np.round(a * 65535).astype(np.uint16)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_grey_alpha_16(grey: np.ndarray, alpha: np.ndarray) -> bytes:
    """A 16-bit grey + alpha PNG (colour type 4), which neither Pillow nor OpenCV writes."""
    ga = np.dstack([grey, alpha]).astype(">u2")
    raw = b"".join(b"\0" + ga[y].tobytes() for y in range(ga.shape[0]))
    ihdr = struct.pack(">IIBBBBB", ga.shape[1], ga.shape[0], 16, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format=fmt, **kw)
    return b.getvalue()


def cv2_encode(ext: str, rgb_or_rgba: np.ndarray) -> bytes:
    a = rgb_or_rgba
    bgr = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr))
    assert ok
    return buf.tobytes()


INPUTS = {
    "PNG": ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "LA16", "RGB16", "RGBA16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "TIFF": ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "RGB16", "RGBA16", "RGBF", "RGBAF"],
    "BMP": ["1", "L", "P", "RGB"],
    "GIF": ["P", "PA"],
}
CASES = [(fmt, mode) for fmt, modes in INPUTS.items() for mode in modes]


@functools.cache
def make_input(fmt: str, mode: str) -> tuple[bytes, np.ndarray, np.ndarray | None]:
    """(file bytes, reference colour or grey (H, W, C) in 0..1, reference alpha or None)."""
    rgb, grey, alpha = _planes()
    kw = {"quality": 95} if fmt in LOSSY else {}
    if mode in ("RGB16", "RGBA16"):
        a = np.dstack([rgb, alpha]) if mode == "RGBA16" else rgb
        q = _u16(a)
        ref = q / 65535
        return (
            cv2_encode(".png" if fmt == "PNG" else ".tif", q),
            ref[..., :3],
            ref[..., 3] if mode == "RGBA16" else None,
        )
    if mode in ("RGBF", "RGBAF"):
        a = (np.dstack([rgb, alpha]) if mode == "RGBAF" else rgb).astype(np.float32)
        return cv2_encode(".tif", a), a[..., :3], a[..., 3] if mode == "RGBAF" else None
    if mode == "LA16":
        g, al = _u16(grey), _u16(alpha)
        return png_grey_alpha_16(g, al), (g / 65535)[..., None], al / 65535
    if mode in ("I;16", "I"):
        q = _u16(grey)
        im = Image.fromarray(q if mode == "I;16" else q.astype(np.int32))
        assert im.mode == mode
        return save(im, fmt), (q / 65535)[..., None], None
    if mode == "F":
        f = grey.astype(np.float32)
        return save(Image.fromarray(f), fmt), f[..., None], None
    if mode in ("1", "L", "LA"):
        im = Image.fromarray(_u8(grey)).convert(mode, dither=Image.Dither.NONE)
        if mode == "LA":
            im.putalpha(Image.fromarray(_u8(alpha)))
        ref = np.asarray(im.convert("L"), dtype=np.float64)[..., None] / 255
        return save(im, fmt, **kw), ref, _u8(alpha) / 255 if mode == "LA" else None
    im = Image.fromarray(_u8(rgb))
    if mode in ("P", "PA"):
        im = im.quantize(48)
        if mode == "PA" and fmt == "TIFF":
            im = im.convert("PA")
            im.putalpha(Image.fromarray(_u8(alpha)))
        elif mode == "PA":  # PNG and GIF keep palette alpha as a transparency table / index
            kw["transparency"] = bytes(range(40, 256, 4))[:48] if fmt == "PNG" else 0
        ref_im = im.copy()
        if "transparency" in kw:
            ref_im.info["transparency"] = kw["transparency"]  # (on `im` it would upset Pillow's GIF writer)
        ref = np.asarray(ref_im.convert("RGBA"), dtype=np.float64) / 255
        return save(im, fmt, **kw), ref[..., :3], ref[..., 3] if mode == "PA" else None
    if mode == "RGBA":
        im.putalpha(Image.fromarray(_u8(alpha)))
    elif mode == "CMYK":
        im = im.convert("CMYK")
    ref = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255
    return save(im, fmt, **kw), ref[..., :3], ref[..., 3] if mode == "RGBA" else None


def decode(data: bytes) -> tuple[Image.Image, np.ndarray, bool, bool, bool]:
    """Pillow's view of an output: (image, samples in 0..1 alpha last, grey, alpha, 16-bit)."""
    im = Image.open(io.BytesIO(data))
    args = im.tile[0].args if im.tile else ""
    raw = args[0] if isinstance(args, tuple) else args
    im.load()
    assert im.mode in ("L", "LA", "RGB", "RGBA", "I;16"), im.mode
    if im.mode in ("RGB", "RGBA") and ";16" in str(raw):  # Pillow holds 8 bits of these: read all 16
        a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert a.dtype == np.uint16
        if str(raw).startswith("LA"):
            return im, a[..., [0, 3]] / 65535, True, True, True
        a = a[..., [2, 1, 0, 3]] if a.shape[2] == 4 else a[..., ::-1]
        return im, a / 65535, False, im.mode == "RGBA", True
    if im.mode == "I;16":
        return im, np.asarray(im, dtype=np.float64)[..., None] / 65535, True, False, True
    a = np.asarray(im, dtype=np.float64) / 255
    a = a[..., None] if a.ndim == 2 else a
    return im, a, im.mode in ("L", "LA"), im.mode in ("LA", "RGBA"), False


def up2(a: np.ndarray) -> np.ndarray:
    """Nearest-neighbour 2x upscale."""
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def as_rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


@pytest.mark.parametrize("out_fmt", OUTPUTS)
@pytest.mark.parametrize(("in_fmt", "mode"), CASES, ids=[f"{f}-{m}" for f, m in CASES])
def test_every_format_and_mode_roundtrips(in_fmt, mode, out_fmt):
    data, ref, ref_alpha = make_input(in_fmt, mode)
    grey_in = mode in ("1", "L", "LA", "I;16", "I", "F", "LA16") and in_fmt != "WEBP"
    sixteen_in = mode in ("I;16", "I", "F", "LA16", "RGB16", "RGBA16", "RGBF", "RGBAF")
    img = read_image(data, name=f"in.{in_fmt.lower()}")
    assert img.grey == grey_in and (img.alpha is not None) == (ref_alpha is not None)
    assert img.bit_depth == (16 if sixteen_in else 8)
    # as `imgdiff upscale` does: no tag of the input's layout (width, strips ...) may survive
    img = img.with_pixels(up2(img.pixels), None if img.alpha is None else up2(img.alpha))
    ref, ref_alpha = up2(ref), None if ref_alpha is None else up2(ref_alpha)

    out = encode_image(img, out_fmt)
    im, got, grey, alpha, sixteen = decode(out)
    assert im.format == out_fmt
    assert alpha == (ref_alpha is not None and out_fmt in ("PNG", "WEBP", "TIFF"))
    assert sixteen == (sixteen_in and out_fmt in ("PNG", "TIFF"))
    colour = got[..., :-1] if alpha else got
    if mode == "LA16" and out_fmt == "TIFF":
        # Pillow cannot open 16-bit grey + alpha TIFFs: written as RGBA with R = G = B
        assert (
            not grey
            and np.array_equal(colour[..., 0], colour[..., 1])
            and np.array_equal(colour[..., 1], colour[..., 2])
        )
    elif out_fmt == "WEBP":  # WebP has no grey: grey comes back as R = G = B
        assert not grey
        if grey_in:
            assert np.abs(colour - colour.mean(axis=2, keepdims=True)).max() < 0.03
    else:
        assert grey == grey_in
    if out_fmt == "TIFF":  # the layout is the output's own, whatever the input's was
        tags = im.tag_v2
        assert 320 not in tags and tags.get(262) in (1, 2)
        assert set(np.atleast_1d(tags.get(339, 1))) == {1}
        assert set(np.atleast_1d(tags[258])) == {16 if sixteen else 8}

    diff = np.abs(as_rgb(colour) - as_rgb(ref))
    if alpha:
        diff = diff[ref_alpha > 0]  # colour under fully transparent pixels is free (WebP changes it)
    if in_fmt in LOSSY or out_fmt in LOSSY:
        assert diff.mean() < 0.04 and diff.max() < 0.25, (diff.mean(), diff.max())
    else:
        assert diff.max() <= (0.51 / 65535 if sixteen else 1.01 / 255), diff.max()
    if alpha:
        assert np.abs(got[..., -1] - ref_alpha).max() <= (0.51 / 65535 if sixteen else 1.01 / 255)


def test_tiff_exif_is_the_descriptive_tags_and_exif_ifd_only():
    rgb, _, _ = _planes()
    ex = Image.Exif()
    ex.update({0x010F: "imgdiff-cam", 0x0110: "model-7", 0x013B: "an artist", 0x8298: "(c) nobody"})
    ex.update({0x0132: "2024:01:02 03:04:05", 0x010E: "a test picture", 0x0112: 6})
    ex[0x8769] = {0x9003: "2023:05:06 07:08:09", 0x829A: 0.01}
    src = Image.fromarray(_u8(rgb)).convert("CMYK")
    img = read_image(save(src, "TIFF", exif=ex.tobytes()), name="cam.tif")
    upright = np.rot90(np.asarray(src.convert("RGB")), -1)  # orientation 6, applied once
    assert np.array_equal(np.round(img.pixels * 255), upright)
    kept = Image.Exif()
    kept.load(img.exif)
    assert not LAYOUT_TAGS & set(kept), set(kept)
    assert kept[0x010F] == "imgdiff-cam" and kept[0x8298] == "(c) nobody" and kept.get(0x0112, 1) == 1
    assert kept.get_ifd(0x8769)[0x9003] == "2023:05:06 07:08:09"
    for fmt in ("TIFF", "JPEG", "PNG", "WEBP"):
        out = Image.open(io.BytesIO(encode_image(img, fmt)))
        e = out.getexif()
        assert e.get(0x010F) == "imgdiff-cam" and e.get(0x013B) == "an artist" and e.get(0x0112, 1) == 1, fmt
        assert e.get_ifd(0x8769).get(0x9003) == "2023:05:06 07:08:09", fmt
    tiff = Image.open(io.BytesIO(encode_image(img, "TIFF")))
    assert tiff.mode == "RGB" and tiff.tag_v2[262] == 2 and tiff.size == (H, W)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_tiff_orientation_is_applied_once(channels):
    """OpenCV, which decodes these, applies a TIFF's orientation itself: it must not happen twice."""
    ex = Image.Exif()
    ex[0x0112] = 6
    q = np.random.default_rng(5).integers(0, 65536, (H, W, channels), dtype=np.uint16)
    data = encode_image(
        ImageData(
            pixels=q[..., :3] / 65535 if channels > 1 else q / 65535,
            bit_depth=16,
            exif=ex.tobytes(),
            alpha=q[..., 3] / 65535 if channels == 4 else None,
        ),
        "TIFF",
    )
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == 6
    img = read_image(data, name="turned.tif")
    got = np.dstack([img.pixels] + ([] if img.alpha is None else [img.alpha[..., None]]))
    assert np.array_equal(_u16(got), np.rot90(q, -1))


def test_layout_tags_smuggled_in_exif_never_reach_a_tiff():
    """A PNG whose eXIf claims float CMYK strips: the TIFF written from it is still plain RGB."""
    rgb, _, _ = _planes()
    ex = Image.Exif()
    ex.update({258: (32, 32, 32, 32), 259: 7, 262: 5, 273: (4,), 277: 4, 339: (3, 3, 3, 3), 317: 3, 0x010F: "cam"})
    img = read_image(save(Image.fromarray(_u8(rgb)), "PNG", exif=ex.tobytes()), name="sly.png")
    im = Image.open(io.BytesIO(encode_image(img, "TIFF")))
    assert im.mode == "RGB" and np.array_equal(np.asarray(im), _u8(rgb)) and im.getexif().get(0x010F) == "cam"
    # even an ImageData whose EXIF was never cleaned (the Python API) cannot smuggle them
    raw = ImageData(pixels=img.pixels, exif=ex.tobytes())
    im = Image.open(io.BytesIO(encode_image(raw, "TIFF")))
    assert im.mode == "RGB" and np.array_equal(np.asarray(im), _u8(rgb))


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def cmyk_profile(tint: tuple[int, int] = (10, 30), body: bytes | None = None) -> bytes:
    """A minimal ICC v2 CMYK printer profile (CMYK -> Lab lut8) with a warm tint littlecms applies.

    With `body`, only the header is real (a CMYK profile that no CMS can use)."""
    clut = bytearray()
    for c, m, y, k in itertools.product((0, 1), repeat=4):
        lightness = 5 + 90 * (1 - k) * (1 - (c + m + y) / 4)
        clut += bytes([round(lightness * 255 / 100), 128 + tint[0], 128 + tint[1]])
    ramp = bytes(range(256))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1" + b"\0" * 4 + bytes([4, 3, 2, 0]) + identity + ramp * 4 + bytes(clut) + ramp * 3
    name = b"imgdiff test CMYK\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(name)) + name + b"\0" * 11 + b"\0" * 67
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + b"\0" * 4 + d50), (b"cprt", b"text\0\0\0\0none\0"), (b"A2B0", lut)]
    table, data, offset = b"", b"", 128 + 4 + 12 * len(tags)
    for sig, tag in tags:
        tag += b"\0" * (-len(tag) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(tag))
        data += tag
    data = body if body is not None else struct.pack(">I", len(tags)) + table + data
    size = 128 + len(data)
    head = struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"prtrCMYKLab "
    head += struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + d50
    return head.ljust(128, b"\0") + data


def _space(icc: bytes | None) -> bytes | None:
    return None if icc is None else icc[16:20]


def test_cmyk_jpeg_goes_through_its_profile_to_srgb():
    profile = cmyk_profile()
    cmyk = Image.new("CMYK", (W, H), (128, 0, 0, 0))  # half cyan on paper
    data = save(cmyk, "JPEG", quality=95, icc_profile=profile)
    img = read_image(data, name="print.jpg")
    decoded = Image.open(io.BytesIO(data))
    want = ImageCms.profileToProfile(
        decoded, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    got = np.round(img.pixels * 255)
    assert np.abs(got - np.asarray(want)).max() <= 1
    naive = np.asarray(decoded.convert("RGB"), dtype=np.float64)
    assert np.abs(got - naive).mean() > 40  # the profile, not the naive formula, made the colours
    assert _space(img.icc) == b"RGB " and not img.warnings
    for fmt in ("JPEG", "PNG", "TIFF", "WEBP"):
        out = Image.open(io.BytesIO(encode_image(img, fmt)))
        assert out.mode == "RGB" and _space(out.info.get("icc_profile")) == b"RGB ", fmt


def test_unusable_cmyk_profile_is_dropped_with_a_warning():
    broken = cmyk_profile(body=b"\0" * 64)
    img = read_image(save(Image.new("CMYK", (W, H), (0, 200, 0, 0)), "TIFF", icc_profile=broken), name="bad.tif")
    assert img.icc is None and any("colour profile dropped" in w and "bad.tif" in w for w in img.warnings)
    assert np.allclose(img.pixels[0, 0] * 255, (255, 55, 255), atol=1)  # converted without it


def _srgb_as(space: bytes) -> bytes:
    """lcms' sRGB profile with another colour space in its header: what the header check sees."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return srgb[:16] + space + srgb[20:]


PROFILES = {
    "sRGB": lambda: _srgb_as(b"RGB "),
    "cmyk": cmyk_profile,
    "lab": lambda: _srgb_as(b"Lab "),
    "grey": lambda: _srgb_as(b"GRAY"),
    "abstract": lambda: ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),  # no image profile
}


@pytest.mark.parametrize(
    ("mode", "profile", "why"),
    [
        ("L", "sRGB", "a RGB profile"),
        ("RGB", "cmyk", "a CMYK profile"),
        ("RGB", "lab", "a Lab profile"),
        ("RGB", "grey", "a GRAY profile"),
        ("RGB", "abstract", "not an image ICC profile"),
    ],
)
def test_profile_of_another_colour_space_is_never_written(mode, profile, why):
    icc = PROFILES[profile]()
    rgb, _, _ = _planes()
    im = Image.fromarray(_u8(rgb)).convert(mode)
    img = read_image(save(im, "PNG", icc_profile=icc), name="tagged.png")
    assert img.icc is None and any(why in w and "tagged.png" in w for w in img.warnings), img.warnings
    # an ImageData built elsewhere (the Python API) with the wrong profile: never written either
    forced = ImageData(pixels=img.pixels, icc=icc)
    for fmt in OUTPUTS:
        out = Image.open(io.BytesIO(encode_image(forced, fmt)))
        if fmt == "WEBP" and mode == "L":  # WebP holds grey as RGB, which an RGB profile describes
            assert out.info.get("icc_profile") == icc and lost_on_write(forced, fmt) == []
            continue
        assert out.info.get("icc_profile") is None, fmt
        lost = lost_on_write(forced, fmt)
        assert any("colour profile dropped" in w and (why in w or fmt == "BMP") for w in lost), (fmt, lost)


def test_grey_profile_is_kept_on_grey_but_not_in_webp():
    grey_icc = _srgb_as(b"GRAY")
    img = ImageData(pixels=np.full((H, W, 1), 0.5, np.float32), icc=grey_icc)
    for fmt in ("PNG", "JPEG", "TIFF"):
        assert Image.open(io.BytesIO(encode_image(img, fmt))).info.get("icc_profile") == grey_icc, fmt
    assert Image.open(io.BytesIO(encode_image(img, "WEBP"))).info.get("icc_profile") is None
    assert lost_on_write(img, "PNG") == [] and lost_on_write(img, "WEBP")
    # 16-bit grey + alpha goes into a TIFF as RGBA (R = G = B), which a grey profile cannot describe
    ga16 = ImageData(pixels=img.pixels, alpha=np.full((H, W), 0.5, np.float32), bit_depth=16, icc=grey_icc)
    assert Image.open(io.BytesIO(encode_image(ga16, "PNG"))).info.get("icc_profile") == grey_icc
    assert Image.open(io.BytesIO(encode_image(ga16, "TIFF"))).info.get("icc_profile") is None
    assert any("GRAY profile" in w for w in lost_on_write(ga16, "TIFF"))


def test_16bit_grey_alpha_png_stays_grey():
    rng = np.random.default_rng(3)
    g, a = rng.integers(0, 65536, (H, W), dtype=np.uint16), rng.integers(0, 65536, (H, W), dtype=np.uint16)
    img = read_image(png_grey_alpha_16(g, a), name="ga16.png")
    assert img.grey and img.bit_depth == 16 and img.alpha is not None
    assert np.array_equal(_u16(img.pixels[..., 0]), g) and np.array_equal(_u16(img.alpha), a)
    out = encode_image(img, "PNG")
    assert struct.unpack(">IIBB", out[16:26]) == (W, H, 16, 4)  # IHDR: 16-bit grey + alpha
    back = read_image(out, name="out.png")
    assert back.grey and np.array_equal(back.pixels, img.pixels) and np.array_equal(back.alpha, img.alpha)


def test_float_rgb_tiff_is_read_clipped_as_16bit():
    f = _planes()[0].astype(np.float32)
    f[0, 0] = (-0.5, 2.0, np.nan)  # scene-linear highlights and garbage: clipped
    img = read_image(cv2_encode(".tif", f), name="hdr.tif")
    assert img.bit_depth == 16 and img.pixels.shape == (H, W, 3) and img.alpha is None
    assert np.array_equal(img.pixels[0, 0], [0, 1, 0])
    assert np.abs(img.pixels[1:] - f[1:]).max() < 1e-6
    assert any("outside 0..1" in w for w in img.warnings)
    im, got, grey, alpha, sixteen = decode(encode_image(img, "PNG"))
    assert sixteen and not grey and np.abs(got - np.clip(np.nan_to_num(f), 0, 1)).max() <= 0.51 / 65535


def test_undecodable_tiff_says_precisely_why():
    data = bytearray(cv2_encode(".tif", np.zeros((H, W, 3), np.float32)))
    entry = struct.pack("<HHIH", 259, 3, 1, 1)  # Compression: none
    at = bytes(data).index(entry)
    data[at : at + len(entry)] = struct.pack("<HHIH", 259, 3, 1, 50000)  # a compression nobody knows
    with pytest.raises(ImageError, match=r"odd\.tif: .*3 samples of 32-bit floating-point.*compression 50000"):
        read_image(bytes(data), name="odd.tif")


def test_long_output_names_fit(tmp_path):
    for overwrite in (False, True):
        p = tmp_path / ("a" * 251 + ".png")  # 255 bytes: the longest name a folder holds
        write_atomic(p, b"data", overwrite=overwrite)
        assert p.read_bytes() == b"data"
        p.unlink()
    assert not list(tmp_path.iterdir())


def test_temp_names_are_short_and_recognisable(tmp_path, monkeypatch):
    seen = []
    real_link = os.link

    def spy(src, dst, *a, **kw):
        seen.append(os.path.basename(src))
        return real_link(src, dst, *a, **kw)

    monkeypatch.setattr(os, "link", spy)
    write_atomic(tmp_path / ("b" * 200 + ".tif"), b"x", overwrite=False)
    (name,) = seen
    assert name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and len(name) == TEMP_NAME_LENGTH <= 32
    assert is_temp_name(name)
    assert is_temp_name(".photo.png.k2x_9q0a.imgdiff-tmp")  # left by earlier releases
    for other in (
        "photo.png",
        ".imgdiff-1234.tmp",
        ".imgdiff-0123456789.tmp",
        "x.imgdiff-tmp",
        ".imgdiff-zzzzzzzz.tmp",
    ):
        assert not is_temp_name(other), other


def test_write_stdout_survives_short_writes_and_eintr(tmp_path, monkeypatch):
    target = open(tmp_path / "out.bin", "w")
    monkeypatch.setattr(sys, "stdout", target)
    real_write, calls = os.write, []

    def stingy(fd, data):
        calls.append(len(data))
        if len(calls) == 2:
            raise InterruptedError
        return real_write(fd, bytes(data[:1000]))  # a pipe takes what fits

    monkeypatch.setattr(os, "write", stingy)
    print("header", end="", file=target)  # text already printed goes out first
    payload = bytes(range(256)) * 40
    write_stdout(payload)
    target.close()
    assert (tmp_path / "out.bin").read_bytes() == b"header" + payload
    assert len(calls) >= len(payload) // 1000


def test_write_stdout_reports_a_reader_that_left():
    code = (
        "import sys\nfrom imgdiff.io import write_stdout\n"
        "try:\n    write_stdout(b'x' * (4 << 20))\nexcept BrokenPipeError:\n    sys.exit(3)\nsys.exit(0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    assert len(writer.stdout.read(10)) == 10
    writer.stdout.close()  # like `| head -c 10`
    assert writer.wait(timeout=60) == 3


def test_stdout_is_terminal(monkeypatch):
    class Fake(io.StringIO):
        def __init__(self, tty: bool):
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "stdout", Fake(True))
    assert stdout_is_terminal()
    monkeypatch.setattr(sys, "stdout", Fake(False))
    assert not stdout_is_terminal()


def test_lost_on_write_names_what_a_format_cannot_hold():
    pix = np.full((H, W, 3), 0.5, np.float32)
    alpha = np.full((H, W), 0.5, np.float32)
    img = ImageData(pixels=pix, alpha=alpha, bit_depth=16)
    assert lost_on_write(img, "PNG") == [] and lost_on_write(img, "TIFF") == []
    assert lost_on_write(img, "JPEG") == [
        "alpha channel dropped: JPEG has no alpha",
        "16-bit reduced to 8-bit: JPEG holds 8 bits",
    ]
    assert lost_on_write(img, "WEBP") == ["16-bit reduced to 8-bit: WEBP holds 8 bits"]
    assert lost_on_write(img, "BMP")[0] == "alpha channel dropped: BMP has no alpha"
    opaque = ImageData(pixels=pix, alpha=np.ones((H, W), np.float32))
    assert lost_on_write(opaque, "JPEG") == []  # nothing to lose
    # and what is reported lost is indeed not written
    for fmt in ("JPEG", "BMP"):
        assert Image.open(io.BytesIO(encode_image(img, fmt))).mode == "RGB"
