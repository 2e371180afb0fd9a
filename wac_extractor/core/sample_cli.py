"""``python -m wac_extractor sample``: a run's results sampled at fields or points, as a GeoPackage or CSV."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .jobs.tracker import open_tracker
from .results.features import read_features, write_table
from .results.sampling import SampleTable, parse_stats, sample_results
from .results.zonal import STATS, engine_hint


def add_sample_parser(sub) -> None:
    sample = sub.add_parser("sample", help="statistics of a run's results at fields (polygons) or points")
    sample.add_argument("--jobs", type=Path, required=True, help="the run's tracker (GeoPackage or CSV)")
    sample.add_argument("--features", type=Path, required=True, help="polygons or points, any OGR vector file")
    sample.add_argument("--out", type=Path, required=True, help="new file: a GeoPackage, or a CSV with --csv")
    sample.add_argument("--output", type=Path, help="the run's output folder (default: the tracker's folder)")
    sample.add_argument("--stats", default=",".join(STATS), help=f"comma-separated, from {','.join(STATS)}")
    sample.add_argument("--csv", action="store_true", help="write a CSV (attributes and statistics, no geometry)")


def sample_table(jobs: Path, features: Path, output: Optional[Path], stats: Sequence[str], **kwargs) -> SampleTable:
    """The table the CLI writes (also what Processing writes: the same call)."""
    tracker = open_tracker(jobs)
    if not tracker.exists():
        raise ValueError(f"--jobs: {jobs} does not exist; give the tracker of a run.")
    output_dir = Path(output) if output else Path(jobs).resolve().parent
    if not output_dir.is_dir():
        raise ValueError(f"--output: {output_dir} is not a folder; give the run's output folder.")
    return sample_results(tracker.read(), output_dir, read_features(features), stats, **kwargs)


def command_sample(args: argparse.Namespace) -> int:
    stats = parse_stats(args.stats)
    if args.out.exists():
        raise FileExistsError(f"--out: {args.out} already exists; choose a new file name.")
    if not args.out.parent.is_dir():
        raise ValueError(f"--out: the folder {args.out.parent} does not exist; create it or choose another.")
    started = time.monotonic()
    if engine_hint():
        print(engine_hint(), file=sys.stderr)
    table = sample_table(args.jobs, args.features, args.output, stats)
    write_table(table, args.out, as_csv=args.csv)
    print(
        f"{len(table.features)} features x {len(table.columns)} columns -> {args.out} "
        f"({time.monotonic() - started:.1f} s)",
        file=sys.stdout,
    )
    return 0
