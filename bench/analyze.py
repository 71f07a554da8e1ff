"""Wall time and peak memory of ``tariffstream analyze`` on the SGSC file.

Not a test: it prints figures as JSON. Run from the repository root:

    python bench/analyze.py [--runs 3] [--file PATH]

Each run is a fresh ``tariffstream analyze --json`` process over the file (read
as UTC+10, as the data's README says); the figures are the process's wall time
and its peak resident set (``ru_maxrss`` of the children); best and worst wall
time of the runs, and the largest peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SGSC = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "sgsc_smart_meter10_halfhourly.csv"
)
COLUMNS = "start=reading_datetime,kwh=general_supply_kwh"


def one_run(path: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS in KiB of one analyze process."""
    command = [
        sys.executable,
        "-m",
        "tariffstream.cli",
        "analyze",
        str(path),
        "--map",
        COLUMNS,
        "--timezone",
        "+10:00",
        "--customer-type",
        "residential",
        "--json",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    # The largest peak of any child so far: after the last run, of all runs.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", type=Path, default=SGSC)
    args = parser.parse_args()
    if not args.file.exists():
        sys.exit(f"no such file: {args.file}")
    rows = sum(1 for _ in args.file.open(encoding="utf-8")) - 1
    walls, peak = [], 0
    for _ in range(args.runs):
        wall, peak = one_run(args.file)
        walls.append(wall)
    print(
        json.dumps(
            {
                "file": args.file.name,
                "rows": rows,
                "runs": args.runs,
                "wall_s_best": round(min(walls), 2),
                "wall_s_worst": round(max(walls), 2),
                "peak_rss_mib": round(peak / 1024, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
