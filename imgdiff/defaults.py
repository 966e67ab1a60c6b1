"""Defaults the CLI and the Python API share; no heavy imports, so `imgdiff --help` stays fast."""

ENSEMBLE_SIZES = (1, 2, 4, 8)
# denoise: 4 transforms buy ~0.2 dB on CBSD68 but cost 1.4x NL-means' time on 2 AMX cores
# (docs/BENCHMARKS.md, "Speed"); 2 is the next candidate for the speed target, not yet measured.
# upscale keeps 1: x4 already runs at LapSRN's time.
DENOISE_ENSEMBLE = 4
