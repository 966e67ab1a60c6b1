"""The benchmark's own camera: clean benchmark images as one fixed camera would have recorded them.

Deliberately not the training pipeline (imgdiff/train/camera.py), so the benchmark does not measure the
training distribution: another camera matrix (dcraw's Canon EOS 5D Mark II, not one of Brooks et al.'s
four), fixed daylight white balance, a GRBG mosaic, OpenCV's own demosaicing, the sRGB transfer curve
instead of gamma 2.2 + smoothstep, three fixed ISO levels, and Pillow's JPEG at quality 90. Seeded per
image, so every method sees the same noisy pixels.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

# dcraw adobe_coeff for the Canon EOS 5D Mark II: XYZ (D65) -> camera, x 1/10000
XYZ2CAM = np.array([[4716, 603, -830], [-7798, 15474, 2480], [-1496, 1937, 6651]]) / 10000
SRGB2XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
WB = np.array([2.05, 1.0, 1.55])  # daylight gains (red, green, blue)
# (shot, read) noise variances in linear raw units [0, 1]: about ISO 800, 3200 and 12800 on a phone
ISO_LEVELS = {"ISO 800": (8e-4, 4e-6), "ISO 3200": (3.2e-3, 3e-5), "ISO 12800": (1.2e-2, 2.5e-4)}
JPEG_QUALITY = 90
# film grain as the benchmark draws it: (blur of white noise in px, its std on 0..255), under white sigma 1
GRAIN_LEVELS = {
    "grain 1.5 px std 4": (1.5, 4.0),
    "grain 1.5 px std 8": (1.5, 8.0),
    "grain 2.5 px std 4": (2.5, 4.0),
    "grain 2.5 px std 8": (2.5, 8.0),
}


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _rgb2cam() -> np.ndarray:
    m = XYZ2CAM @ SRGB2XYZ
    return m / m.sum(axis=1, keepdims=True)


def _grbg(raw_rgb: np.ndarray) -> np.ndarray:
    """GRBG Bayer samples of an (H, W, 3) camera-RGB image."""
    m = np.empty(raw_rgb.shape[:2], raw_rgb.dtype)
    m[0::2, 0::2] = raw_rgb[0::2, 0::2, 1]
    m[0::2, 1::2] = raw_rgb[0::2, 1::2, 0]
    m[1::2, 0::2] = raw_rgb[1::2, 0::2, 2]
    m[1::2, 1::2] = raw_rgb[1::2, 1::2, 1]
    return m


def record(clean: np.ndarray, iso: str | tuple[float, float], seed: int) -> np.ndarray:
    """uint8 RGB (even sides) -> what this camera writes as a JPEG at that ISO (uint8 RGB); iso is
    a name of ISO_LEVELS or its (shot, read) variances."""
    shot, read = ISO_LEVELS[iso] if isinstance(iso, str) else iso
    rgb2cam = _rgb2cam()
    lin = _srgb_to_linear(clean.astype(np.float64) / 255)
    cam = np.clip((lin @ rgb2cam.T) / WB, 0, 1)
    bayer = _grbg(cam)
    rng = np.random.default_rng(seed)
    noisy = bayer + rng.standard_normal(bayer.shape) * np.sqrt(shot * bayer + read)
    wb = np.empty_like(noisy)
    gains = _grbg(np.broadcast_to(WB, cam.shape))
    wb[:] = np.clip(noisy * gains, 0, 1)
    raw16 = np.round(wb * 65535).astype(np.uint16)
    demosaiced = cv2.cvtColor(raw16, cv2.COLOR_BayerGB2RGB).astype(np.float64) / 65535  # OpenCV's "GB" is GRBG
    srgb = _linear_to_srgb(demosaiced @ np.linalg.inv(rgb2cam).T)
    out = np.round(srgb * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def film_scan(clean: np.ndarray, grain: str | tuple[float, float], seed: int) -> np.ndarray:
    """uint8 RGB -> a scanned film's look: white noise blurred by a Gaussian (OpenCV, each channel
    independent) to the given std, plus a scanner's fine white noise of sigma 1. Not the training
    model (imgdiff/train/degrade.py::film_grain: torch, intensity-scaled, channel-mixed, random)."""
    blur, std = GRAIN_LEVELS[grain] if isinstance(grain, str) else grain
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.normal(0, 1, clean.shape).astype(np.float32), (0, 0), blur)
    noisy = clean + n * (std / n.std()) + rng.normal(0, 1, clean.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def even(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return np.ascontiguousarray(a[: h // 2 * 2, : w // 2 * 2])


def high_frequency_energy(a: np.ndarray) -> float:
    """Mean squared detail of the luminance: the image minus its Gaussian blur (sigma 1.5)."""
    y = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float(np.mean((y - cv2.GaussianBlur(y, (0, 0), 1.5)) ** 2))


def most_textured_box(a: np.ndarray, side: int = 96) -> tuple[int, int, int]:
    best, box = -1.0, (0, 0, min(side, *a.shape[:2]))
    s = box[2]
    for y in range(0, a.shape[0] - s + 1, s // 2):
        for x in range(0, a.shape[1] - s + 1, s // 2):
            e = high_frequency_energy(a[y : y + s, x : x + s])
            if e > best:
                best, box = e, (y, x, s)
    return box


def texture_ratio(out: np.ndarray, clean: np.ndarray, box: tuple[int, int, int]) -> float:
    """High-frequency energy of the output over the clean image's, on the clean image's most textured
    square: 1 = texture kept, < 1 smoothed away, > 1 noise or ringing left."""
    y, x, s = box
    return high_frequency_energy(out[y : y + s, x : x + s]) / max(
        high_frequency_energy(clean[y : y + s, x : x + s]), 1e-9
    )
