"""Where imgdiff keeps what it learns once and reuses: learnt styles, this CPU's precision probe."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$IMGDIFF_CACHE, else $XDG_CACHE_HOME/imgdiff, else ~/.cache/imgdiff."""
    base = os.environ.get("IMGDIFF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "imgdiff"
    )
    return Path(base)
