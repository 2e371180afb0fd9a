"""bench/README.md's tables, generated from bench/results.json and bench/mutation.json (one source per figure).

``make bench`` calls this after measuring; ``python -m bench.report`` regenerates the tables alone.
Each table sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in the README; the
text around them explains the method and holds no measured figure.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
MUTATION = HERE / "mutation.json"  # make mutation (bench/mutation.py)
README = HERE / "README.md"


def duration(seconds: float | None) -> str:
    """A duration at a readable scale: 0.11 ms, 3.5 ms, 0.14 s, 24 s, 630 s."""
    if seconds is None:
        return "n/a"
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"


def spread(entry: dict) -> str:
    """``best .. worst`` of a timed entry, or the best alone when the worst was not recorded."""
    if "worst_s" in entry:
        return f"{duration(entry['best_s'])} .. {duration(entry['worst_s'])}"
    return f"best {duration(entry['best_s'])}"


def measured(section: dict, runs: str) -> str:
    return f"*Measured {section.get('measured_at', '(date not recorded)')}; {runs}.*"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def recipe(results: dict) -> str:
    section = results["recipe_tile"]
    names = {
        "lcfm_S2": "`lcfm`, Sentinel-2",
        "lcfm_S1": "`lcfm`, Sentinel-1",
        "monthly_S2": "`monthly` (baseline), Sentinel-2",
        "monthly_S1": "`monthly` (baseline), Sentinel-1",
    }
    rows = [[label, duration(section[key]["median_s"]), spread(section[key])] for key, label in names.items()]
    return "\n\n".join([
        measured(section, f"{section['runs']} runs each; {section['tile']}"),
        table(["recipe, sensor", "median", "best .. worst"], rows),
        f"Peak RSS of the process over these runs: {section['peak_rss_mb'] / 1024:.1f} GB.",
    ])  # fmt: skip


def sampling(results: dict) -> str:
    section = results["sampling"]
    size = f"{section['fields']:,} fields x {section['tiles']} tiles (S1 + S2) x {section['variables']} variables"
    names = {"ours": "ours, coverage weights by exactextract (chosen when installed): every statistic, tiles combined",
             "ours_shapely": "ours, coverage weights by shapely (GEOS; without exactextract): the same",
             "exactextract": "exactextract 0.3.0: mean, median, stdev, count; per file, not combined",
             "qgis": "QGIS `native:zonalstatisticsfb`: mean, median, stdev, count; per variable"}  # fmt: skip
    rows = []
    for key, label in names.items():
        entry = section.get(key) or {"error": "not run"}
        if "error" in entry:
            rows.append([label, "-", "-", "-", "-", entry["error"]])
            continue
        runs = entry.get("runs", [entry])
        loads = ", ".join(f"{r['load_1min'][0]:.1f}" for r in runs if "load_1min" in r)
        worst = f"{duration(entry['seconds'])} .. {duration(entry['worst_s'])}" if len(runs) > 1 else "1 run"
        note = f"1-min load before each run: {loads}"
        if "variables_measured" in entry:
            note = (f"{entry['variables_measured']} variables timed over a VRT of the 100 files "
                    f"({duration(entry['seconds_measured'])}), scaled to {section['variables']}; {note}")  # fmt: skip
        cpu = duration(entry["cpu_s"]) if "cpu_s" in entry and "variables_measured" not in entry else "-"
        rows.append([label, f"**{duration(entry['seconds'])}**", worst, cpu, f"{entry['peak_rss_mb']:.0f} MB", note])
    low, median, high = section["field_ha"]
    runs = (f"{size}; tiles of {section.get('tile_km', 2):g} km, {section['pixels']}, fields of {low:g}-{high:g} ha "
            f"(median {median:g} ha), {section['fields_across_tiles']:,} across a tile border; tiles synthesised in "
            f"{duration(section['synthesis_s'])}; one process per engine, niced")  # fmt: skip
    return "\n\n".join([
        measured(section, runs),
        table(["engine", "wall (best)", "best .. worst", "CPU time (that run)", "peak RSS", "note"], rows),
    ])  # fmt: skip


def planning(results: dict) -> str:
    section = results["planning"]
    labels = {"aoi_50000_km2": "one AOI of ~50,000 km2, 10 km tiles, 12 monthly windows, S1+S2",
              "layer_1000_polygons": "1,000-polygon layer (1 km2 fields over the same area)"}  # fmt: skip
    rows = [[label, f"{section[key]['tiles']:,}", f"{section[key]['jobs']:,}", duration(section[key]["median_s"]),
             spread(section[key]), section[key]["runs"]] for key, label in labels.items()]  # fmt: skip
    return "\n\n".join([measured(section, "runs per row in the table"),
                        table(["workload", "tiles", "jobs", "median", "spread", "runs"], rows)])  # fmt: skip


def tracker(results: dict) -> str:
    section = results["tracker_update"]
    names = ["geopackage (ours)", "openeo CsvJobDatabase", "openeo ParquetJobDatabase"]
    rows = []
    for size in (key for key in section if key.isdigit()):
        entry = section[size]
        cells = [f"{duration(entry[n]['median_s'])} ({spread(entry[n])})" for n in names]
        rows.append([f"{int(size):,}", *cells, f"{entry['speedup_vs_csv']:.1f}x", entry[names[0]]["runs"]])
    return "\n\n".join([
        measured(section, "median (spread) of the runs per row"),
        table(["jobs", "GeoPackage (ours)", "openeo `CsvJobDatabase`", "openeo `ParquetJobDatabase`",
               "ours vs CSV", "runs"], rows),  # fmt: skip
        f"GeoPackage update time from the smallest to the largest tracker: "
        f"{section['geopackage_growth_1k_to_100k']:.2f}x. Creating the GeoPackage (once per run): "
        + ", ".join(f"{duration(section[s]['geopackage (ours)']['create_s'])} for {int(s):,} jobs"
                    for s in section if s.isdigit()) + ".",  # fmt: skip
        f"Peak RSS of the benchmark process after the trackers: {results['peak_rss_mb_trackers']:.0f} MB.",
    ])  # fmt: skip


def layers(results: dict) -> str:
    section = results["result_layers"]
    tiles = section["tiles"]
    base, vrt = section["baseline_addRasterLayer_per_variable"], section["ours_vrt_build_in_task"]
    opened, ui = section["ours_layers_opened_in_task"], section["ours_layers_on_ui_thread"]
    total = section["ours_total_work"]["total_s"]
    rows = [
        ["baseline: one layer per NetCDF variable, as `iface.addRasterLayer`", "UI thread",
         duration(base["total_s"]), duration(base["per_tile_ms"] / 1000)],
        ["ours: month composite VRTs", "task thread", duration(vrt["total_s"]), duration(vrt["per_tile_ms"] / 1000)],
        ["ours: open and style the composite layers", "task thread", duration(opened["total_s"]),
         f"{duration(opened['per_tile_ms'] / 1000)} (UI thread meanwhile: worst gap "
         f"{opened['ui_thread_worst_gap_ms']} ms)"],
        ["ours: add to the project, group, temporal range", "UI thread", duration(ui["total_s"]),
         duration(ui["per_tile_ms"] / 1000)],
        ["**ours, total work**", "both", f"**{duration(total)}**", f"**{duration(total / tiles)}**"],
    ]  # fmt: skip
    return "\n\n".join([
        measured(section, f"1 run; {tiles} Sentinel-1 results run on the local backend in "
                          f"{section['run_seconds_local_backend']:.1f} s"),
        table(["step", "where", "total", "per tile"], rows),
        f"Total work per tile: ours {total / tiles * 1000:.0f} ms against the baseline's "
        f"{base['per_tile_ms']:.0f} ms ({total / tiles * 1000 / base['per_tile_ms']:.1f}x); on the UI thread: "
        f"ours {ui['per_tile_ms']:.2f} ms against {base['per_tile_ms']:.0f} ms. "
        f"RSS of the process after loading: {section['rss_after_loading_mb']:.0f} MB.",
    ])  # fmt: skip


def mosaics(results: dict) -> str:
    section = results["mosaic_layers"]
    base, ours = section["baseline_per_tile_layers"], section["month_mosaics"]
    rows = [
        [f"baseline: a layer per tile, month and style ({base['tiles']:,} tiles)", f"{base['jobs']:,}",
         f"{base['layers_added']:,}", duration(base["seconds"]), f"{base['rss_growth_mb']:.0f} MB",
         f"{base['ui_worst_gap_ms']} ms", base["ui_gaps_over_50ms"]],
        [f"ours: month mosaics ({ours['tiles']:,} tiles)", f"{ours['jobs']:,}",
         f"**{ours['layers_added']:,}** (bound {ours['layer_bound_months_x_sensors_x_styles']})",
         duration(ours["seconds"]), f"**{ours['rss_growth_mb']:.0f} MB**", f"**{ours['ui_worst_gap_ms']} ms**",
         ours["ui_gaps_over_50ms"]],
    ]  # fmt: skip
    return "\n\n".join([
        measured(section, f"1 run; {section['jobs'] + 1:,} jobs ({section['tiles']:,} tiles x S1 + S2, "
                          f"{section['months']} months) run on the local backend in "
                          f"{section['run_seconds_local_backend']:.0f} s"),
        table(["loading", "results", "layers added", "time", "RSS growth", "worst UI gap", "UI gaps over 50 ms"],
              rows),
        f"First picture: one more job's result to its tile drawn from the month mosaic in "
        f"**{duration(section['first_picture_s'])}** (target 1 s).",
    ])  # fmt: skip


DRAW_ROWS = (
    ("before_netcdf", "before: tiles read from their NetCDF (composite VRTs over `NETCDF:`)"),
    ("display_copies", "display copies (COGs), the mosaic without an overview of its own"),
    ("after_mosaic_overview", "after: display copies and the mosaic's own overview (chunk files at 1/4)"),
)


def draw(results: dict) -> str:
    section = results["mosaic_draw"]
    rows = []
    for key, label in DRAW_ROWS:
        entry = section.get(key)
        if entry:
            median, lines = (
                f"**{duration(entry['median_s'])}**",
                (entry["hdf5_diag_lines"], entry["rasterio_error_lines"]),
            )
            rows.append(
                [label, duration(entry["first_s"]), median, spread(entry), entry["runs"], *map("{:,}".format, lines)]
            )
    cached = "; kept from the run that wrote them, `DRAW_BENCH_DIR`" if section.get("display_copies_cached") else ""
    builds = [f"{duration(section[k])} {label}" for k, label in (
        ("before_mosaic_build_s", "over NetCDF"), ("display_copies_mosaic_build_s", "over display copies"),
        ("after_mosaic_build_s", f"over display copies with the overview ({section['tiles'] - 1:,} tiles)"),
    ) if k in section]  # fmt: skip
    text = [
        measured(section, f"1 run; {section['tiles']:,} synthetic LCFM S2 tiles of {section['pixels']}, "
                          f"the first month's true colour drawn zoomed out at {section['output_px']} px"),
        table(["mosaic", "first draw", "median draw", "spread", "draws", "`HDF5-DIAG` lines", "`RasterIO error` lines"],
              rows),
    ]  # fmt: skip
    if "new_tile_drawn_s" in section:
        text.append(
            f"A new tile on the zoomed-out canvas: **{duration(section['new_tile_drawn_s'])}** from its display copy "
            f"to its place drawn (placed in the mosaic, its overview chunk rewritten, the layer reloaded and drawn; "
            f"target 1 s, as the first picture's). The overview: {section['overview_files']} chunk files, "
            f"{section['overview_mb']:.0f} MB for {section['tiles']:,} tiles."
        )
    text.append(
        f"Building the mosaic a tile at a time: {', '.join(builds)}. Writing the display copies: "
        f"{duration(section['display_copies_s'])} for {section['tiles']:,} tiles "
        f"({1000 * section['display_copies_s'] / section['tiles']:.0f} ms a tile, "
        f"{section['display_copy_mb']:.1f} MB each{cached}). Target: {section['target']}."
        + (f" {section['note'][0].upper()}{section['note'][1:]}." if section.get("note") else "")
    )
    return "\n\n".join(text)


def scheduling(results: dict) -> str:
    section = results["scheduling"]
    names = {"ours": "ours (`ExtractionRunner`, poll every 0.5 s)",
             "baseline_run_jobs": "baseline: `MultiBackendJobManager.run_jobs`, `poll_sleep=0.5`"}  # fmt: skip
    rows = []
    for key, label in names.items():
        run = section[key]
        rows.append([label, run["jobs"], run["finished"], duration(run["wall_s"]), duration(run["ideal_s"]),
                     f"{run['wall_over_ideal']:.2f}x", f"{run['http_requests_per_job']:.1f}"])  # fmt: skip
    return "\n\n".join([
        measured(section, f"1 run each, {section['slots']} parallel slots, jobs of {section['job_seconds']}"),
        table(["run", "jobs", "finished", "wall", "ideal", "wall / ideal", "HTTP requests per job"], rows),
    ])  # fmt: skip


def ui(results: dict) -> str:
    rows = []
    for key in ("ui_responsiveness", "ui_desktop"):
        if key not in results:
            continue
        r = results[key]
        if "error" in r:
            rows.append([key, "failed", "", "", "", "", "", ""])
            continue
        load = r.get("load_1min")
        causes = "; ".join(f"{kind}: {c['count']} (worst {c['worst_ms']} ms)"
                           for kind, c in r.get("stall_causes", {}).items()) or "not sampled"  # fmt: skip
        rows.append([
            r.get("where", "offscreen, mocked iface"), f"{r['jobs']:,}", f"{r['layers_loaded']:,}",
            duration(r["wall_s"]), f"{load[0]:.1f} / {load[1]:.1f}" if load else "not recorded",
            f"{r['ticks']:,}", f"{r['p99_gap_ms']} ms", r["gaps_over_50_ms"],
            f"**{r['worst_gap_ms']} ms** (machine paused: worst {r['machine_pauses']['worst_ms']:.0f} ms)", causes,
        ])  # fmt: skip
    dates = ", ".join(results[k].get("measured_at", "(date not recorded)") for k in ("ui_responsiveness", "ui_desktop")
                      if k in results)  # fmt: skip
    return "\n\n".join([
        f"*Measured {dates}; 1 run each.*",
        table(["where", "jobs", "layers", "wall", "1-min load before / after", "ticks", "p99 gap", "gaps over 50 ms",
               "worst gap", "the stalls by what the UI thread did"], rows),
    ])  # fmt: skip


def mutation(results: dict) -> str:
    section = results["mutation"]
    groups = section["groups"]
    dates = sorted(entry["measured_at"] for entry in groups.values())
    replays = sorted({entry["replay"]["at"] for entry in groups.values() if "replay" in entry})
    total = sum(entry["seconds"] for entry in groups.values())
    rows = []
    for entry in groups.values():
        reached = entry["mutants"] - entry["no_tests"]
        later = entry.get("replay", {}).get("killed", 0)
        replayed = [later, entry["survived"] - later] if replays else []
        rows.append([
            ", ".join(f"`{m.removeprefix('wac_extractor/')}`" for m in entry["modules"]),
            entry["mutants"], entry["no_tests"], entry["killed"], entry["timeout"], entry["survived"],
            *([f"{100 * entry['killed'] / reached:.0f} %" if reached else "n/a"] if replays else []),
            *replayed,
            f"**{100 * (entry['killed'] + later) / reached:.0f} %**" if reached else "n/a",
            f"{100 * (entry['killed'] + later) / entry['mutants']:.0f} %", duration(entry["seconds"]),
        ])  # fmt: skip
    if replays:
        head = ["killed of reached (run)", "killed since by new tests (replayed)", "surviving now",
                "killed of reached now", "killed of all now"]  # fmt: skip
        said = (f"survivors replayed against the new tests {', '.join(replays)}",
                "*killed (run)* is mutmut's own run; *killed since* are that run's survivors that the tests written "
                "afterwards fail (`python -m bench.mutation --kills GROUP`), not yet a new run.")  # fmt: skip
    else:
        head = ["killed of reached", "killed of all"]
        said = ("every figure from the run itself", "Each survivor is listed in mutation_survivors.md.")
    return "\n\n".join([
        f"*Measured {dates[0]} .. {dates[-1]}; {section['tool']}, 1 run per module under `nice -n 19` on the "
        f"shared 2-core VM; {said[0]}.*",
        table(["module", "mutants", "no test reaches it", "killed", "timeout", "survived", *head, "run time"], rows),
        f"All modules: {sum(e['mutants'] for e in groups.values()):,} mutants in {duration(total)} "
        f"({total / 60:.0f} min). {said[1]}",
    ])  # fmt: skip


SECTIONS = {"recipe": recipe, "planning": planning, "tracker": tracker, "layers": layers, "mosaics": mosaics,
            "draw": draw, "scheduling": scheduling, "ui": ui, "sampling": sampling, "mutation": mutation}  # fmt: skip


def load() -> dict:
    """results.json, with mutation.json (written by ``make mutation``) under ``"mutation"``."""
    results = json.loads(RESULTS.read_text())
    if MUTATION.exists():
        results["mutation"] = json.loads(MUTATION.read_text())
    return results


def render(results: dict) -> dict:
    """Each generated block's markdown, by name; a section missing from results is left out."""
    blocks = {}
    for name, make in SECTIONS.items():
        try:
            blocks[name] = make(results)
        except KeyError as missing:
            blocks[name] = f"*Not measured yet (results.json has no {missing}).*"
    return blocks


def update(readme: str, blocks: dict) -> str:
    """The README text with every ``<!-- bench:NAME -->`` block replaced by its generated table."""
    for name, text in blocks.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.DOTALL)
        if not pattern.search(readme):
            raise ValueError(f"bench/README.md has no <!-- bench:{name} --> block")
        readme = pattern.sub(lambda m, text=text: m.group(1) + text + "\n" + m.group(2), readme)
    return readme


def main() -> int:
    README.write_text(update(README.read_text(), render(load())))
    print(f"{README} regenerated from {RESULTS} and {MUTATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
