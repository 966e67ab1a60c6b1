"""Errors that the CLI reports as one line, without a traceback."""


class ImgdiffError(Exception):
    """A user-facing failure; the message names the file or option at fault."""


class CheckpointError(ImgdiffError):
    """A checkpoint that is missing, corrupt, tampered with, or meant for another task."""


class ImageError(ImgdiffError):
    """An input image that cannot be read safely."""


class UnknownModel(CheckpointError):
    """--model names neither a shipped model nor an existing file: a usage error, found before loading."""


class UsageError(ImgdiffError):
    """An option or argument the user must change: one line and exit 2, before any work is done."""
