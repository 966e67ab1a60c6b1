"""imgdiff: image restoration with conditional diffusion models (CLI and Python API)."""

__version__ = "0.1.0"

_API = ("denoise", "upscale", "stylize", "generate")


def __getattr__(name: str):
    # the API pulls in torch; importing imgdiff (e.g. for --version) should not
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["__version__", *_API]
