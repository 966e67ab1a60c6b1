"""The long fuzz run of docs/RELIABILITY.md: the suite's targets with many more examples.

python scripts/fuzz.py --loader 20000 --cli 500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from imgdiff.cli import app  # noqa: E402
from tests.fuzzing import argv, check_loader, images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loader", type=int, default=20000, help="examples for the image loader")
    ap.add_argument("--cli", type=int, default=500, help="examples for the option parser")
    a = ap.parse_args()
    runner = CliRunner()
    counts = {"loader": 0, "cli": 0}

    @settings(max_examples=a.loader, deadline=5000, database=None, suppress_health_check=list(HealthCheck))
    @given(images)
    def loader(data: bytes) -> None:
        counts["loader"] += 1
        check_loader(data)

    @settings(max_examples=a.cli, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(argv())
    def cli(args: list[str]) -> None:
        counts["cli"] += 1
        r = runner.invoke(app, args + ["/nonexistent/absent.png"])
        assert r.exit_code in (0, 1, 2), (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))

    for name, fn in (("loader", loader), ("cli", cli)):
        t = time.time()
        fn()
        print(f"{name}: {counts[name]} executions in {time.time() - t:.0f} s, no failure")


if __name__ == "__main__":
    main()
