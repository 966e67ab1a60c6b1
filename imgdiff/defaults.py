"""Defaults the CLI and the Python API share; no heavy imports, so `imgdiff --help` stays fast."""

ENSEMBLE_SIZES = (1, 2, 4, 8)
# the largest self-ensemble that keeps default denoising within NL-means' time on 2 AMX cores
# (docs/BENCHMARKS.md, "Speed"); upscaling keeps 1, the x4 speed target leaves no room
DENOISE_ENSEMBLE = 4
