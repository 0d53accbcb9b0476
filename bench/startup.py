"""Start-up time of `zoo --help` and `zoo list` (fresh processes; median of --repeats).

    python bench/startup.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    zoo = shutil.which("zoo") or f"{sys.executable} -m zoo.cli"
    for command, target in (("--help", 0.3), ("list", 0.5)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([*zoo.split(), command], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"zoo {command:<7} median {statistics.median(times):.3f} s  min {min(times):.3f} s  (aim < {target} s)")


if __name__ == "__main__":
    main()
