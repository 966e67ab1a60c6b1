"""Defaults the CLI and the Python API share; no heavy imports, so `imgdiff --help` stays fast."""

from typing import Literal, get_args

ENSEMBLE_SIZES = tuple(range(1, 9))  # the first N of imgdiff.ensemble.ORDER
# denoise: 3 transforms buy ~0.26 dB over 1 on corpus crops and 4 only ~0.03 dB more (imgdiff/ensemble.py);
# on photographs (Kodak24, 8 images, sigma 25: 31.19 / 31.28 / 31.32 dB for 1 / 3 / 8) ~0.1 dB; 4
# took 1.4x NL-means' time on 2 AMX cores; 3 fits within it (docs/BENCHMARKS.md, "Speed").
# upscale keeps 1: x4 already runs at LapSRN's time.
DENOISE_ENSEMBLE = 3
# denoise's --detail for camera noise (imgdiff/detail.py): 1 + a * s^p, s the std (0..255) of what the
# denoiser removed, capped. Fitted on the held-out photographs through the benchmark camera: per image
# and ISO, the gain that brings its texture ratio to 0.9, regressed on s (docs/TRAINING.md, "A detail
# gain that follows the noise"); the cap is the largest gain the fit saw. White noise keeps the posterior
# mean (1), which is what its PSNR benchmark measures.
REAL_DETAIL_FIT = (0.18, 0.54)
REAL_DETAIL_MAX = 2.0
# ...faded in linearly over this range of s: a clean photo (s ~0.5-1.4 on the held-out ones) keeps its
# fine detail through the camera model (texture 1.01 at gain 1), and the fit's gain sharpened it (1.23)
REAL_DETAIL_RAMP = (1.0, 3.0)
DETAIL_RANGE = (0.0, 4.0)
STYLE_STRENGTH = 0.45  # stylize's default --strength (pipelines/stylize.py says what it sets)
# The default tile does not depend on free memory, so the same command gives the same pixels on
# every machine; 1024² keeps the half-resolution UNet's activations under ~0.7 GB in fp32.
DEFAULT_TILE = 1024
# Typed choices: the CLI annotates options with these, so --help lists the values and Click refuses
# any other in one line, before torch is imported.
Precision = Literal["auto", "fp32", "fp16", "bf16"]
TrainTask = Literal["denoise", "upscale-x2", "upscale-x4", "denoise-real", "upscale-x4-real", "generate"]
EvalTask = Literal["denoise", "upscale-x2", "upscale-x4"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
TRAIN_TASKS: tuple[str, ...] = get_args(TrainTask)
