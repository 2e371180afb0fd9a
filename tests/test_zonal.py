"""The vectorised zonal engine (``core/results/zonal.py``, ``sampling._GroupSampler``) against per-pixel
references computed one pixel at a time: no backend, random fields over two adjacent synthetic tiles."""

from __future__ import annotations

import ctypes.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from wac_extractor.core.results import sampling, zonal
from wac_extractor.core.results.features import FeatureSet
from wac_extractor.core.results.result_tiles import ResultTile, TileData
from wac_extractor.core.results.zonal import Grid, weighted_medians

PIXEL = 20.0
# the shapely engine is exact to rounding, exactextract's float32 fractions to ~1e-7 (optional: skipped without it)
ENGINES = [("shapely", 1e-12), pytest.param("exactextract", 1e-6, marks=pytest.mark.skipif(
    zonal.coverage_engine() != "exactextract", reason="exactextract is not installed"))]  # fmt: skip
GRIDS = [Grid(0.0, 400.0, PIXEL, PIXEL, 20, 20), Grid(400.0, 400.0, PIXEL, PIXEL, 20, 20)]  # west, east


def _fields(rng, count: int) -> np.ndarray:
    """Turned rectangles of 30-160 m sides anywhere over both tiles (many across their border at x = 400)."""
    cx, cy = rng.uniform(40, 760, count), rng.uniform(40, 360, count)
    w, h, angle = rng.uniform(30, 160, count), rng.uniform(30, 160, count), rng.uniform(0, 180, count)
    return np.array([shapely.affinity.rotate(box(x - a / 2, y - b / 2, x + a / 2, y + b / 2), t)
                     for x, y, a, b, t in zip(cx, cy, w, h, angle)], dtype=object)  # fmt: skip


def _pixel_weights(field, grid: Grid) -> dict:
    """{(row, col): covered fraction}, one GEOS intersection per pixel of the whole grid."""
    out = {}
    for row in range(grid.height):
        for col in range(grid.width):
            x, y = grid.x0 + col * grid.dx, grid.y0 - row * grid.dy
            share = field.intersection(box(x, y - grid.dy, x + grid.dx, y)).area / grid.pixel_area
            if share > 0:
                out[row, col] = share
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value where the cumulative weight reaches half; at exactly half, the mean with the next value."""
    keep = np.isfinite(values)
    values, weights = values[keep], weights[keep]
    if not len(values):
        return math.nan
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    half = cumulative[-1] / 2
    for i, c in enumerate(cumulative):
        if abs(c - half) <= 1e-9 * cumulative[-1]:
            return (values[i] + values[min(i + 1, len(values) - 1)]) / 2
        if c > half:
            return float(values[i])
    return float(values[-1])


@pytest.mark.parametrize("engine,rel", ENGINES)
def test_coverages_of_many_fields_equal_one_intersection_per_pixel(engine, rel):
    rng = np.random.default_rng(3)
    fields = np.concatenate([_fields(rng, 25), [box(900, 900, 950, 950), shapely.Polygon(), box(-30, 100, 30, 160)]])
    cover = getattr(zonal, f"coverages_{engine}")(fields, GRIDS[0])
    expected = [_pixel_weights(f, GRIDS[0]) if not f.is_empty else {} for f in fields]
    assert list(cover.polygons) == [i for i, e in enumerate(expected) if e]  # outside, empty: none
    for k, i in enumerate(cover.polygons):
        pixels = cover.pixels[cover.starts[k] : cover.starts[k + 1]]
        got = dict(zip(zip(pixels // GRIDS[0].width, pixels % GRIDS[0].width), cover.weights[cover.starts[k] :]))
        assert got.keys() == expected[i].keys()
        assert all(got[p] == pytest.approx(expected[i][p], rel=rel, abs=rel) for p in got)


def test_weighted_medians_of_many_polygons_equal_numpy_on_repeated_values():
    """Integer weights: the weighted median is numpy's median of each value repeated weight times."""
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 9, 40)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    values = rng.integers(0, 7, (3, starts[-1])).astype(float)
    values[rng.random(values.shape) < 0.25] = np.nan
    weights = rng.integers(1, 4, starts[-1]).astype(float)
    got = weighted_medians(values, weights, starts)
    for k in range(len(sizes)):
        part = slice(starts[k], starts[k + 1])
        for v in range(3):
            repeated = np.repeat(values[v, part], weights[part].astype(int))
            repeated = repeated[np.isfinite(repeated)]
            expected = np.median(repeated) if len(repeated) else math.nan
            assert got[v, k] == expected or (math.isnan(got[v, k]) and math.isnan(expected)), (k, v)


@pytest.mark.parametrize("engine,rel", ENGINES)
def test_fields_across_two_tiles_in_small_batches_equal_per_pixel_references(monkeypatch, engine, rel):
    """Sums across tiles, medians in the tile or from both tiles, batches split anywhere: each field's
    statistics equal the formulas applied to its pixels weighted one pixel at a time."""
    monkeypatch.setattr(sampling, "BATCH_PIXELS", 37)
    monkeypatch.setattr(zonal, "coverage_engine", lambda: engine)
    tol = max(rel, 1e-9)
    rng = np.random.default_rng(7)
    fields = np.concatenate([_fields(rng, 30), [box(100, 100, 110, 110)]])  # and one smaller than a pixel
    features = FeatureSet(fields, "EPSG:32631", [{} for _ in fields], [], 3, "f")
    tiles = []
    for grid in GRIDS:
        values = rng.normal(500, 100, (2, grid.height, grid.width)).astype(np.float32)
        values[rng.random(values.shape) < 0.2] = np.nan
        tiles.append(TileData(grid, ["a", "b"], values, ""))
    sampler = sampling._GroupSampler(features, sampling.STATS, {})
    for data in tiles:
        g = data.grid
        own = box(g.x0, g.y0 - g.dy * g.height, g.x0 + g.dx * g.width, g.y0)
        sampler.add_tile(ResultTile(Path("x.nc"), "S2", "2023-01", 32631), data, own)
    table = sampler.columns(("S2", None))
    crossing = 0
    for i, field in enumerate(fields):
        per_tile = [(data, _pixel_weights(field, data.grid)) for data in tiles]
        crossing += sum(bool(w) for _, w in per_tile) == 2
        for v, name in enumerate(["a", "b"]):
            x = np.array([d.values[v][p] for d, w in per_tile for p in w], dtype=float)
            w = np.array([s for _, ws in per_tile for s in ws.values()]) * PIXEL * PIXEL
            ok = np.isfinite(x)
            if field.area < PIXEL * PIXEL or not ok.any():
                expected = {"mean": math.nan, "median": math.nan, "std": math.nan, "count": 0.0, "valid_fraction": 0.0}
            else:
                mean = np.sum(w[ok] * x[ok]) / w[ok].sum()
                expected = {"mean": mean, "median": _weighted_median(x, w), "count": w[ok].sum() / (PIXEL * PIXEL),
                            "std": math.sqrt(np.sum(w[ok] * (x[ok] - mean) ** 2) / w[ok].sum()),
                            "valid_fraction": w[ok].sum() / field.area}  # fmt: skip
            for stat, value in expected.items():
                got = table[f"S2_{name}_{stat}"][i]
                assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, rel=tol), (i, stat)
    assert crossing >= 3, "the random fields should cross the tile border"


def test_without_exactextract_sampling_says_what_to_install_and_samples_with_shapely(monkeypatch):
    monkeypatch.setitem(sys.modules, "exactextract", None)  # as if not installed: importing it raises
    assert zonal.coverage_engine() == "shapely"
    assert "pip install exactextract" in zonal.engine_hint()
    fields = _fields(np.random.default_rng(11), 5)
    got, expected = zonal.coverages(fields, GRIDS[0]), zonal.coverages_shapely(fields, GRIDS[0])
    assert np.array_equal(got.pixels, expected.pixels) and np.array_equal(got.weights, expected.weights)


GEOS_C = ctypes.util.find_library("geos_c")


@pytest.mark.skipif(not GEOS_C or zonal.coverage_engine() != "exactextract", reason="needs GEOS and exactextract")
def test_with_a_geos_in_the_global_scope_as_in_qgis_desktop_the_shapely_engine_is_used():
    """QGIS Desktop links GEOS into its binary; exactextract's bundled GEOS then crashed on rotated fields.
    Preloading the system GEOS makes the same global scope in a child process."""
    code = (
        "import numpy as np\n"
        "from wac_extractor.core.results import zonal\n"
        "from tests.test_zonal import GRIDS, _fields\n"
        "cover = zonal.coverages(_fields(np.random.default_rng(2), 40), GRIDS[0])\n"
        "print(zonal.coverage_engine(), len(cover.pixels), repr(zonal.engine_hint()))\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "LD_PRELOAD": GEOS_C, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    engine, pixels, hint = done.stdout.split()
    assert engine == "shapely" and int(pixels) > 0 and hint == "''"
