"""A short, deterministic fuzz run in the suite; `scripts/fuzz.py` runs the same targets for longer."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from imgdiff.cli import app
from tests.conftest import tiny_checkpoint
from tests.fuzzing import argv, check_checkpoint, check_loader, crafted_headers, images


@settings(max_examples=300, derandomize=True, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(images)
def test_loader_never_crashes(data):
    check_loader(data)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=argv())
def test_option_parsing_never_crashes(runner, tmp_path, args):
    # the input does not exist, so any accepted option combination ends as a per-file error (1), a
    # refused one as a usage error (2); only --help succeeds
    r = runner.invoke(app, args + [str(tmp_path / "absent.png")])
    assert r.exit_code in ((0, 2) if "--help" in args else (1, 2)), (args, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    assert "Traceback" not in r.output


@settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(crafted=crafted_headers())
def test_checkpoint_header_json_types_never_crash(tmp_path, crafted):
    path = tmp_path / "tiny.safetensors"
    if not path.exists():
        tiny_checkpoint(path)
    check_checkpoint(path, *crafted)
