"""Command line: ``python -m wac_extractor plan|run|status`` (headless, no QGIS needed)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from openeo.rest import OpenEoClientException
from shapely.geometry.base import BaseGeometry

from .backends.connect import CDSE_URL, check_backend
from .backends.signin import (
    SIGN_IN_METHODS,
    BackendLogin,
    DeviceCodePrompt,
    DeviceFlowUi,
    SignIn,
    SignInCancelledError,
    SignInRequiredError,
    sign_out,
    signed_in_as,
)
from .jobs.credits import credit_report
from .jobs.failures import CAUSE_COLUMN, LABELS, failure_summary
from .jobs.job_options import DEFAULT_MAX_MEMORY_MB, memory_mb, parse_options
from .jobs.progress import JobEvent, RunProgress, iter_failed, result_counts
from .jobs.reruns import DEFAULT_RERUNS, earlier_attempts
from .jobs.run_setup import RunOptions, backend_logins, prepare_run
from .jobs.signin_recovery import SignInLostError
from .jobs.tracker import TrackerError, create_tracker, open_tracker
from .planning.job_table import PlanRequest, plan_aois, plan_grid, summarize
from .planning.timewindows import add_months, parse_date
from .recipes import DEFAULT_RECIPE, RECIPES
from .sample_cli import add_sample_parser, command_sample

_log = logging.getLogger("wac_extractor")


def read_aoi_file(path: Path) -> List[Tuple[BaseGeometry, str]]:
    """Polygons of every feature of the first layer of a vector file, with the layer's CRS."""
    import shapely
    from osgeo import ogr

    ogr.UseExceptions()
    try:
        dataset = ogr.Open(str(path))
    except RuntimeError as exc:
        raise ValueError(f"--aoi: {path} does not open as a vector file ({exc}); use GeoJSON or GeoPackage.") from None
    layer = dataset.GetLayer(0)
    srs = layer.GetSpatialRef()
    if srs is None:
        crs = "EPSG:4326"
    else:
        srs.AutoIdentifyEPSG()
        code = srs.GetAuthorityCode(None)
        crs = f"EPSG:{code}" if code and srs.GetAuthorityName(None) == "EPSG" else srs.ExportToWkt()
    aois = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is not None:
            aois.append((shapely.from_wkb(bytes(geometry.ExportToWkb())), crs))
    if not aois:
        raise ValueError(f"--aoi: {path} has no features with a geometry; add polygons to it.")
    return aois


def _pair(text: str, what: str) -> Tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what}: give two numbers separated by a comma, e.g. 664000,5611120"
        ) from None
    return x, y


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wac_extractor", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every job event")
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="write a job table (tracker) for a grid or for AOIs")
    where = plan.add_argument_group("where: either a grid (the notebook's) or --aoi")
    where.add_argument("--aoi", type=Path, help="vector file with AOI polygons (any CRS)")
    where.add_argument("--tile-size", type=float, default=10_000, help="UTM tile size in m for --aoi (default 10000)")
    where.add_argument("--grid-origin", type=lambda t: _pair(t, "--grid-origin"), help="west,south of the grid")
    where.add_argument("--crs", default="EPSG:32631", help="CRS of the grid (default EPSG:32631)")
    where.add_argument("--window", type=float, default=10_000, help="grid window size in m")
    where.add_argument("--gap", type=float, default=10_000, help="gap between grid windows in m")
    where.add_argument("--rows", type=int, default=2)
    where.add_argument("--cols", type=int, default=2)
    when = plan.add_argument_group("when and what")
    when.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    ends = when.add_mutually_exclusive_group(required=True)
    ends.add_argument("--end", help="day after the last day, YYYY-MM-DD (exclusive)")
    ends.add_argument("--months", type=int, help="length of the period in months")
    when.add_argument("--window-months", type=int, default=3, help="months per job (default 3)")
    when.add_argument("--sensors", default="s1,s2", help="s1, s2 or s1,s2 (default)")
    when.add_argument("--max-cloud-cover", type=float, default=85, help="Sentinel-2 scene cloud limit in %%")
    when.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default=DEFAULT_RECIPE,
        help="what each job computes: lcfm (LCFM features, default) or monthly (composites for quick looks)",
    )
    when.add_argument("--max-jobs", type=int, default=5_000, help="refuse plans with more jobs (default 5000)")
    plan.add_argument("--out", type=Path, required=True, help="tracker to write: .gpkg or .csv")

    run = sub.add_parser("run", help="run a tracker's jobs to completion (resumes)")
    run.add_argument("--jobs", type=Path, required=True, help="tracker (.gpkg or .csv)")
    run.add_argument("--backend", action="append", help=f"backend URL (repeatable; default {CDSE_URL})")
    run.add_argument("--parallel", type=int, action="append", help="parallel jobs per backend (default 2)")
    run.add_argument("--output", type=Path, required=True, help="folder for results (<output>/<job id>/)")
    _sign_in_arguments(run)
    run.add_argument("--poll", type=float, default=10.0, help="seconds between status polls (default 10)")
    run.add_argument("--max-queued-hours", type=float, help="cancel jobs still queued on the backend after this long")
    run.add_argument(
        "--max-credits",
        type=float,
        help="start new jobs only while spent + projected running + the new job stay within this",
    )
    run.add_argument("--job-budget", type=float, help="each job's openEO budget: the backend stops a job above it")
    run.add_argument("--job-option", action="append", default=[], metavar="KEY=VALUE",
                     help="an openEO job option sent with every job, e.g. executor-memory=4G (repeatable); "
                          "a tracker row's job_options column wins")  # fmt: skip
    run.add_argument("--reruns", type=int, default=DEFAULT_RERUNS,
                     help="run a job the backend lost (error, no assets, bad result) again up to N more times "
                          f"(default {DEFAULT_RERUNS}); out of memory: with 1.5x the memory")  # fmt: skip
    run.add_argument(
        "--max-memory",
        default=f"{DEFAULT_MAX_MEMORY_MB // 1024}G",
        help="the most memory an out-of-memory re-run asks per memory option (default %(default)s)",
    )

    login = sub.add_parser("login", help="sign in (device code for OIDC), then test what the backend offers")
    login.add_argument("--backend", default=CDSE_URL, help=f"backend URL (default {CDSE_URL})")
    _sign_in_arguments(login)
    logout = sub.add_parser("logout", help="forget the stored OIDC refresh tokens of a backend")
    logout.add_argument("--backend", default=CDSE_URL, help=f"backend URL (default {CDSE_URL})")

    status = sub.add_parser("status", help="counts per status and the failed jobs of a tracker")
    status.add_argument("--jobs", type=Path, required=True)
    add_sample_parser(sub)
    return parser


def _sign_in_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auth", choices=SIGN_IN_METHODS, default="oidc", help="default oidc (device code)")
    parser.add_argument("--username", help="basic: the user; client_credentials: the client id")


def _print_device_code(prompt: DeviceCodePrompt) -> None:
    print(f"Sign in: open {prompt.link} and enter the code {prompt.user_code} "
          f"(waiting {prompt.expires_in:.0f}s)", flush=True)  # fmt: skip


def sign_in_from_args(args) -> SignIn:
    """Secrets only from the environment or a prompt: never from the command line (shell history, ps)."""
    secret = ""
    if args.auth == "basic":
        secret = os.environ.get("WAC_PASSWORD") or getpass.getpass(f"Password for {args.username}: ")
    elif args.auth == "client_credentials":
        secret = os.environ.get("WAC_CLIENT_SECRET") or getpass.getpass(f"Client secret for {args.username}: ")
    return SignIn(args.auth, args.username or "", secret, device_ui=DeviceFlowUi(show=_print_device_code))


def command_plan(args) -> int:
    request = PlanRequest(
        start_date=args.start,
        end_date=args.end or add_months(parse_date(args.start, "--start"), args.months).isoformat(),
        sensors=[s for s in args.sensors.split(",") if s.strip()],
        max_cloud_cover=args.max_cloud_cover,
        window_months=args.window_months,
        max_jobs=args.max_jobs,
        recipe=args.recipe,
    )
    if args.aoi:
        table = plan_aois(request, read_aoi_file(args.aoi), tile_size=args.tile_size)
    else:
        if args.grid_origin is None:
            raise ValueError("plan: give either --aoi FILE or --grid-origin WEST,SOUTH.")
        west, south = args.grid_origin
        table = plan_grid(request, west, south, args.crs, args.window, args.gap, args.rows, args.cols)
    create_tracker(args.out, table)
    print(f"{summarize(table)} -> {args.out}")
    return 0


def command_run(args) -> int:
    urls = args.backend or [CDSE_URL]
    parallel = args.parallel or []
    if len(parallel) > len(urls):
        raise ValueError("--parallel: given more often than --backend; give one --parallel per --backend.")
    parallel = [parallel[i] if i < len(parallel) else 2 for i in range(len(urls))]
    if not open_tracker(args.jobs).exists():
        raise ValueError(f"--jobs: {args.jobs} does not exist; make it first with 'plan --out {args.jobs}'.")
    backends = backend_logins(urls, parallel, sign_in_from_args(args))

    last_line = [""]

    def progress(p: RunProgress) -> None:
        """A line when something changed: a poll every few seconds must not flood the terminal."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(p.counts.items()))
        line = f"[{p.done}/{p.total} done] {counts}; downloaded {p.downloaded}"
        if line != last_line[0]:
            print(line, flush=True)
            last_line[0] = line

    def event(e: JobEvent) -> None:
        if e.status == "notice":  # said once by the run, e.g. a backend's limit of concurrent jobs
            print(e.message, flush=True)
        elif e.status == "rerun":
            print(f"  job {e.index} {e.title}: {e.message}"[:300], flush=True)
        elif e.status in ("error", "download_failed", "skipped"):
            print(f"  job {e.index} {e.title}: {e.status}: {e.message}"[:300], flush=True)

    max_queued = args.max_queued_hours * 3600 if args.max_queued_hours else None
    options = RunOptions(args.poll, max_queued, args.max_credits, args.job_budget, parse_options(args.job_option),
                         args.reruns, memory_mb(args.max_memory))  # fmt: skip
    runner = prepare_run(args.jobs, args.output, backends, options, on_progress=progress, on_event=event)
    tracker = runner.tracker
    print(f"credits before the run: {runner.credits().text()}", flush=True)
    try:
        summary = runner.run()
    except KeyboardInterrupt:
        runner.cancel()
        print("interrupted: the tracker keeps every job; run the same command again to resume.")
        return 130
    print(f"done in {summary.seconds:.0f}s: {summary.counts}; {summary.downloaded} results downloaded and checked")
    if summary.credits is not None:
        print(f"credits: {summary.credits.text()}")
    if summary.cap_reached:
        print(summary.cap_message())
        return 3
    if summary.downloads_failed:
        print(result_counts(tracker))
    return 0 if not summary.downloads_failed and set(summary.counts) <= {"finished"} else 1


def command_login(args) -> int:
    connection = BackendLogin(args.backend, sign_in_from_args(args))()
    report = check_backend(connection, user=signed_in_as(connection) if args.auth != "none" else "")
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def command_logout(args) -> int:
    print(f"forgot {sign_out(args.backend)} stored sign-in(s) for {args.backend}")
    return 0


def command_status(args) -> int:
    tracker = open_tracker(args.jobs)
    if not tracker.exists():
        raise ValueError(f"--jobs: {args.jobs} does not exist.")
    counts = tracker.count_by_status()
    print(
        ", ".join(f"{status}: {count}" for status, count in sorted(counts.items())) + f" (total {sum(counts.values())})"
    )
    if counts.get("finished"):
        print(result_counts(tracker))  # "finished" on the backend is not a result here
    jobs = tracker.read()
    print(f"credits: {credit_report(jobs).text()}")
    if failure_summary(jobs):
        print(failure_summary(jobs))  # by cause: "3 failed: 2 out of memory, re-run with more memory; 1 no assets"
    for row in iter_failed(tracker):
        message = row.get("error_message") if isinstance(row.get("error_message"), str) else ""
        status = "download failed" if row.get("status") == "finished" else row.get("status")
        cause = LABELS.get(str(row.get(CAUSE_COLUMN)), "")
        tried = len(earlier_attempts(row))
        attempts = f" after {tried + 1} attempts" if tried else ""
        line = f"  {row.name}\t{status}\t{cause}{attempts}\t{row.get('id') or '-'}\t{row.get('title')}\t{message}"
        print(line[:300])
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    commands = {"plan": command_plan, "run": command_run, "status": command_status, "login": command_login,
                "logout": command_logout, "sample": command_sample}  # fmt: skip
    try:
        return commands[args.command](args)
    except (
        ValueError,
        TrackerError,
        FileExistsError,
        OpenEoClientException,
        SignInRequiredError,
        SignInCancelledError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SignInLostError as exc:  # the run stopped on a refused sign-in; every job is kept
        print(f"stopped: {exc}", file=sys.stderr)
        return 1
