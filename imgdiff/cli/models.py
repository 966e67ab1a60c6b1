"""`imgdiff models`: list, inspect and verify checkpoints, and rewrite the manifest."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ImgdiffError
from ..report import print_error
from .options import OneLineErrors

models_app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, help="List, inspect and verify checkpoints.")


@models_app.command("list")
def models_list(json_out: Annotated[bool, typer.Option("--json", help="JSON lines on stdout.")] = False) -> None:
    """The shipped checkpoints."""
    from ..checkpoint import read_config
    from ..hub import manifest, weights_dir

    for name, entry in sorted(manifest().items()):
        cfg = read_config(weights_dir() / entry["file"])
        row = {
            "name": name,
            "task": cfg["task"],
            "file": entry["file"],
            "sha256": entry["sha256"],
            "validation": cfg.get("validation", {}),
        }
        print(json.dumps(row) if json_out else f"{name:<12} {cfg['task']:<9} {entry['sha256'][:12]}  {entry['file']}")


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="Shipped name or .safetensors path.")]) -> None:
    """A checkpoint's full config (architecture, training, validation) as JSON."""
    from ..checkpoint import read_config
    from ..hub import resolve

    try:
        path, _ = resolve(name)
        print(json.dumps(read_config(path), indent=2, sort_keys=True))
    except ImgdiffError as e:
        print_error(str(e))
        raise typer.Exit(1) from None


@models_app.command("verify")
def models_verify() -> None:
    """Check every shipped checkpoint against the manifest's sha256."""
    from ..hub import verify_all

    try:
        rows = verify_all()
    except ImgdiffError as e:
        print_error(str(e))
        raise typer.Exit(1) from None
    bad = 0
    for name, ok, msg in rows:
        print(f"{name:<12} {'ok' if ok else 'FAILED'}" + ("" if ok else f"  {msg}"))
        bad += not ok
    raise typer.Exit(1 if bad else 0)


@models_app.command("manifest")
def models_manifest(
    folder: Annotated[Optional[Path], typer.Argument(help="Weights folder (default: shipped).")] = None,
) -> None:
    """Rewrite manifest.json and MODEL_CARDS.md from the checkpoints in a folder (maintainers)."""
    from ..cards import write_manifest
    from ..hub import weights_dir

    target = folder or weights_dir()
    for name, entry in write_manifest(target).items():
        print(f"{name:<12} {entry['sha256'][:12]}  {entry['file']}")
