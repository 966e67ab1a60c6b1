"""Image I/O keeps what the user had: depth, alpha, grey, orientation, ICC, EXIF; writes are atomic."""

from __future__ import annotations

import io
import time

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from imgdiff.errors import ImageError
from imgdiff.io import encode_image, png_metadata, read_image, write_atomic
from tests.conftest import png_declaring


def roundtrip(img, fmt="PNG", meta=None):
    return read_image(encode_image(img, fmt, meta), name="x")


def save(im: Image.Image, fmt="PNG", **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format=fmt, **kw)
    return b.getvalue()


def test_rgb_png_roundtrip_is_exact(photo):
    img = read_image(save(Image.fromarray(photo)), name="p")
    assert img.pixels.shape == (48, 64, 3) and img.bit_depth == 8 and img.alpha is None
    back = roundtrip(img)
    assert np.array_equal(np.round(back.pixels * 255), photo)


def test_alpha_is_carried_untouched(photo):
    alpha = np.tile(np.arange(64, dtype=np.uint8)[None] * 4, (48, 1))
    rgba = np.dstack([photo, alpha])
    img = read_image(save(Image.fromarray(rgba, "RGBA")), name="a")
    assert img.alpha is not None and img.pixels.shape[2] == 3
    out = Image.open(io.BytesIO(encode_image(img, "PNG")))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)


def test_grey_stays_grey(photo):
    grey = Image.fromarray(photo).convert("L")
    img = read_image(save(grey), name="g")
    assert img.grey
    assert Image.open(io.BytesIO(encode_image(img, "PNG"))).mode == "L"


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_colour_roundtrip(ext):
    a = (np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)
    ok, buf = cv2.imencode(ext, a[..., ::-1])
    img = read_image(buf.tobytes(), name="16")
    assert img.bit_depth == 16
    assert np.abs(img.pixels * 65535 - a).max() < 0.51
    back = cv2.imdecode(
        np.frombuffer(encode_image(img, "PNG" if ext == ".png" else "TIFF"), np.uint8), cv2.IMREAD_UNCHANGED
    )
    assert back.dtype == np.uint16 and np.array_equal(back[..., ::-1], a)


def test_16bit_grey_roundtrip():
    a = (np.random.default_rng(1).random((10, 12)) * 65535).astype(np.uint16)
    img = read_image(save(Image.fromarray(a)), name="g16")
    assert img.grey and img.bit_depth == 16
    back = np.asarray(Image.open(io.BytesIO(encode_image(img, "PNG"))))
    assert np.array_equal(back.astype(np.uint16), a)


def test_exif_orientation_is_applied_and_reset(photo):
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    img = read_image(save(im, "JPEG", exif=exif.tobytes(), quality=95), name="r")
    assert img.pixels.shape[:2] == (64, 48)
    out = Image.open(io.BytesIO(encode_image(img, "JPEG")))
    assert out.getexif().get(0x0112, 1) == 1
    # the top-left of the displayed image is the original's bottom-left
    assert np.abs(img.pixels[0, 0] * 255 - photo[-1, 0]).max() < 40


def test_icc_and_exif_are_copied(photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x010F] = "imgdiff-test-camera"
    img = read_image(save(im, "PNG", icc_profile=icc, exif=exif.tobytes()), name="icc")
    assert img.icc == icc
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        out = Image.open(io.BytesIO(encode_image(img, fmt)))
        assert out.info.get("icc_profile") == icc, fmt
        if fmt != "TIFF":
            assert out.getexif().get(0x010F) == "imgdiff-test-camera", fmt


def test_png_metadata_chunks(photo):
    img = read_image(save(Image.fromarray(photo)), name="m")
    meta = png_metadata(encode_image(img, "PNG", {"imgdiff": {"task": "denoise", "seed": 3}}))
    assert '"task": "denoise"' in meta["imgdiff"]


@pytest.mark.parametrize("mode", ["CMYK", "P", "1", "LA", "Ptrans", "I;16", "F"])
def test_unusual_modes_are_converted(photo, mode):
    im = Image.fromarray(photo)
    if mode == "Ptrans":
        im = im.convert("P")
        im.info["transparency"] = 0
    elif mode in ("I;16", "F"):
        im = (
            im.convert("L").convert(mode)
            if mode == "F"
            else Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257)
        )
    else:
        im = im.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "F") else "PNG"
    img = read_image(save(im, fmt), name=mode)
    assert img.pixels.ndim == 3 and img.pixels.shape[2] in (1, 3)
    assert np.isfinite(img.pixels).all() and 0 <= img.pixels.min() and img.pixels.max() <= 1


def test_bad_inputs_are_refused_with_the_file_name(tmp_path, photo):
    good = save(Image.fromarray(photo))
    cases = {"empty.png": b"", "text.png": b"hello, not an image", "trunc.png": good[: len(good) // 2]}
    for name, data in cases.items():
        with pytest.raises(ImageError, match=name):
            read_image(data, name=name)


def test_decompression_bomb_is_refused_before_decoding():
    data = png_declaring(60000, 60000)
    t = time.time()
    with pytest.raises(ImageError, match="megapixels"):
        read_image(data, name="bomb.png")
    assert time.time() - t < 1.0


def test_write_atomic_never_clobbers(tmp_path):
    p = tmp_path / "out.bin"
    write_atomic(p, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(p, b"second", overwrite=False)
    assert p.read_bytes() == b"first"
    write_atomic(p, b"third", overwrite=True)
    assert p.read_bytes() == b"third"
    assert [q.name for q in tmp_path.iterdir()] == ["out.bin"]  # no temp files left
