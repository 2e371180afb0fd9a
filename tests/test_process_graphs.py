"""Process graphs per job row, checked against the official openEO process specifications."""

import importlib.util
import json
from pathlib import Path

import pytest

from wac_extractor.core.planning.job_table import PlanRequest, plan_grid
from wac_extractor.core.recipes import lcfm
from wac_extractor.core.recipes.monthly import S2_BANDS
from wac_extractor.core.recipes.process_graphs import BackendCapabilities, expected_result, job_cube
from wac_extractor.core.recipes.sentinel import S1_COLLECTION, S2_COLLECTION

# Backend-specific processes that are not in the official set (CDSE lists this one).
BACKEND_PROCESSES = {"to_scl_dilation_mask"}


@pytest.fixture(scope="module")
def process_specs():
    """The openeo-processes JSON specifications shipped inside the openeo-processes-dask wheel."""
    spec = importlib.util.find_spec("openeo_processes_dask")
    assert spec is not None, "openeo-processes-dask (specs only) is missing: run make setup"
    folder = Path(next(iter(spec.submodule_search_locations))) / "specs" / "openeo-processes"
    specs = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert {"load_collection", "mask", "aggregate_temporal_period", "save_result"} <= specs.keys()
    return specs


def notebook_rows(recipe: str):
    """The notebook's first row per sensor (its grid, 2023-01..03), planned with ``recipe``."""
    request = PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3, recipe=recipe)
    table = plan_grid(request, west=664000, south=5611120, crs="EPSG:32631")
    return {sentinel: table[table["sentinel"] == sentinel].iloc[0] for sentinel in (1, 2)}


@pytest.fixture(scope="module")
def rows():
    return notebook_rows("monthly")


@pytest.fixture(scope="module")
def lcfm_rows():
    return notebook_rows("lcfm")


def walk_nodes(flat_graph):
    for node in flat_graph.values():
        yield node
        for value in node["arguments"].values():
            if isinstance(value, dict) and "process_graph" in value:
                yield from walk_nodes(value["process_graph"])
            if isinstance(value, dict):  # load_collection properties: {name: {process_graph}}
                for inner in value.values():
                    if isinstance(inner, dict) and "process_graph" in inner:
                        yield from walk_nodes(inner["process_graph"])


def assert_valid(flat_graph, specs):
    for node in walk_nodes(flat_graph):
        pid = node["process_id"]
        if pid in BACKEND_PROCESSES:
            continue
        assert pid in specs, f"{pid} is not an openEO process"
        params = {p["name"]: p for p in specs[pid]["parameters"]}
        unknown = set(node["arguments"]) - params.keys()
        assert not unknown, f"{pid}: unknown arguments {unknown}"
        missing = {n for n, p in params.items() if not p.get("optional") and n not in node["arguments"]}
        assert not missing, f"{pid}: missing required arguments {missing}"


def nodes_by_id(flat_graph, process_id):
    return [n for n in walk_nodes(flat_graph) if n["process_id"] == process_id]


def test_sentinel2_graph(rows, process_specs):
    graph = job_cube(rows[2]).flat_graph()
    assert_valid(graph, process_specs)
    (load,) = nodes_by_id(graph, "load_collection")
    assert load["arguments"]["id"] == S2_COLLECTION
    assert load["arguments"]["bands"] == S2_BANDS + ["SCL"]
    assert load["arguments"]["spatial_extent"] == {
        "west": 664000,
        "south": 5611120,
        "east": 674000,
        "north": 5621120,
        "crs": 32631,
    }
    assert load["arguments"]["temporal_extent"] == ["2023-01-01", "2023-04-01"]
    (lte,) = nodes_by_id(load["arguments"]["properties"]["eo:cloud_cover"]["process_graph"], "lte")
    assert lte["arguments"] == {"x": {"from_parameter": "value"}, "y": 85.0}
    masked_classes = sorted(n["arguments"]["y"] for n in nodes_by_id(graph, "eq"))
    assert masked_classes == [0, 1, 3, 8, 9, 10, 11]
    assert len(nodes_by_id(graph, "mask")) == 1
    (filter_bands,) = nodes_by_id(graph, "filter_bands")
    assert filter_bands["arguments"]["bands"] == S2_BANDS
    (aggregate,) = nodes_by_id(graph, "aggregate_temporal_period")
    assert aggregate["arguments"]["period"] == "month"
    assert nodes_by_id(graph, "median")
    (save,) = nodes_by_id(graph, "save_result")
    assert save["arguments"]["format"] == "netCDF"
    assert not nodes_by_id(graph, "to_scl_dilation_mask")


def test_sentinel2_graph_uses_dilated_mask_when_backend_lists_it(rows, process_specs):
    caps = BackendCapabilities(processes=frozenset({"to_scl_dilation_mask"}))
    graph = job_cube(rows[2], caps).flat_graph()
    assert_valid(graph, process_specs)
    (dilation,) = nodes_by_id(graph, "to_scl_dilation_mask")
    assert dilation["arguments"]["mask2_values"] == [3, 8, 9, 10, 11]
    assert len(nodes_by_id(graph, "mask")) == 2
    assert sorted(n["arguments"]["y"] for n in nodes_by_id(graph, "eq")) == [0, 1]


def test_sentinel1_graph(rows, process_specs):
    graph = job_cube(rows[1]).flat_graph()
    assert_valid(graph, process_specs)
    (load,) = nodes_by_id(graph, "load_collection")
    assert load["arguments"]["id"] == S1_COLLECTION
    assert load["arguments"]["bands"] == ["VV", "VH"]
    assert "properties" not in load["arguments"]
    (aggregate,) = nodes_by_id(graph, "aggregate_temporal_period")
    assert aggregate["arguments"]["period"] == "month"
    (log,) = nodes_by_id(graph, "log")
    assert log["arguments"]["base"] == 10
    (multiply,) = nodes_by_id(graph, "multiply")
    assert 10 in multiply["arguments"].values()
    (save,) = nodes_by_id(graph, "save_result")
    assert save["arguments"]["format"] == "netCDF"


def test_sentinel1_dates_outside_the_collection_are_refused(rows):
    caps = BackendCapabilities(temporal_extents=((S1_COLLECTION, ("2023-01-01", "2024-12-31")),))
    job_cube(rows[1], caps)  # 2023-01..03 is inside
    late = rows[1].copy()
    late["temporal_extent"] = ["2024-11-01", "2025-02-01"]
    with pytest.raises(ValueError, match="SENTINEL1_GLOBAL_MOSAICS covers 2023-01-01 to 2024-12-31"):
        job_cube(late, caps)


def test_rows_from_a_csv_tracker_decode(rows):
    row = rows[2].copy()
    row["spatial_extent"] = json.dumps(row["spatial_extent"])
    row["temporal_extent"] = str(list(row["temporal_extent"]))  # python repr, as pandas writes it
    assert job_cube(row).flat_graph() == job_cube(rows[2]).flat_graph()


NOTEBOOK_EXTENT = {"west": 664000, "south": 5611120, "east": 674000, "north": 5621120, "crs": 32631}


def cloud_limit(load):
    (lte,) = nodes_by_id(load["arguments"]["properties"]["eo:cloud_cover"]["process_graph"], "lte")
    return lte["arguments"]


def test_the_default_recipe_is_lcfm_and_is_stored_in_each_row():
    table = plan_grid(PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3), 664000, 5611120, "EPSG:32631")
    assert set(table["recipe"]) == {"lcfm"}
    with pytest.raises(ValueError, match="recipe: 'weekly' is not a known recipe; use one of lcfm, monthly"):
        PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3, recipe="weekly")


def test_a_notebook_row_without_recipe_builds_the_lcfm_graph(lcfm_rows):
    row = lcfm_rows[2].drop(labels=["recipe"])
    assert job_cube(row).flat_graph() == job_cube(lcfm_rows[2]).flat_graph()
    assert job_cube(row).flat_graph() != job_cube(notebook_rows("monthly")[2]).flat_graph()


def test_lcfm_sentinel2_graph(lcfm_rows, process_specs):
    graph = job_cube(lcfm_rows[2]).flat_graph()
    assert_valid(graph, process_specs)
    # Two load_collections, the six bands and SCL, each with the row's cloud filter.
    loads = nodes_by_id(graph, "load_collection")
    assert sorted(tuple(n["arguments"]["bands"]) for n in loads) == [
        ("B02", "B03", "B04", "B08", "B11", "B12"),
        ("SCL",),
    ]
    for load in loads:
        assert load["arguments"]["id"] == S2_COLLECTION
        assert load["arguments"]["spatial_extent"] == NOTEBOOK_EXTENT
        assert load["arguments"]["temporal_extent"] == ["2023-01-01", "2023-04-01"]
        assert cloud_limit(load) == {"x": {"from_parameter": "value"}, "y": 85.0}
    # SCL flags: clouds (3, 8, 9, 10), saturated 1, dark 2, snow 11, water 6, vegetation 4, not vegetated 5;
    # observed != 0. The other eq 0 is the erosion: no clear pixel in the disc.
    assert sorted(n["arguments"]["y"] for n in nodes_by_id(graph, "eq")) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
    assert [n["arguments"]["y"] for n in nodes_by_id(graph, "neq")] == [0]
    assert len(nodes_by_id(graph, "any")) == 1
    # Disc kernels: radius 3 (cloud erosion, snow dilation; 7 x 7, 29 cells) and 13 (cloud dilation; 27 x 27, 529).
    kernels = [n["arguments"]["kernel"] for n in nodes_by_id(graph, "apply_kernel")]
    shapes = sorted((len(k), len(k[0]), sum(map(sum, k))) for k in kernels)
    assert shapes == [(7, 7, 29), (7, 7, 29), (27, 27, 529)]
    for kernel in kernels:
        radius = len(kernel) // 2
        assert all(
            kernel[y][x] == (1 if (x - radius) ** 2 + (y - radius) ** 2 <= radius**2 else 0)
            for y in range(len(kernel))
            for x in range(len(kernel))
        )
    # Permanent snow above 90 % and the "mostly invalid" rule above 90 %.
    assert sorted(n["arguments"]["y"] for n in nodes_by_id(graph, "gt")) == [0, 0, 0.9, 0.9]
    assert len(nodes_by_id(graph, "mask")) == 1
    # NDVI appended after the six bands, rescaled [-1, 1] -> [-10000, 10000].
    (modify,) = nodes_by_id(graph, "array_modify")
    assert modify["arguments"]["index"] == 6
    ranges = [
        [n["arguments"][k] for k in ("inputMin", "inputMax", "outputMin", "outputMax")]
        for n in nodes_by_id(graph, "linear_scale_range")
    ]
    assert sorted(ranges) == [[-32766, 32766, -32766, 32766], [-1, 1, -10000, 10000]]
    # Dekad medians interpolated, then percentiles; monthly medians as bands.
    periods = sorted(n["arguments"]["period"] for n in nodes_by_id(graph, "aggregate_temporal_period"))
    assert periods == ["dekad", "month"]
    (quantiles,) = nodes_by_id(graph, "quantiles")
    assert quantiles["arguments"]["probabilities"] == [0.1, 0.25, 0.5, 0.75, 0.9]
    assert len(nodes_by_id(graph, "array_interpolate_linear")) == 1
    over_time = [n["arguments"] for n in nodes_by_id(graph, "apply_dimension") if n["arguments"]["dimension"] == "t"]
    assert sorted(a.get("target_dimension") or "t" for a in over_time) == ["bands", "bands", "t"]
    # Band names: 35 percentiles + 7 x 3 months, merged in that order.
    targets = [n["arguments"]["target"] for n in nodes_by_id(graph, "rename_labels")]
    percentiles = [f"{b}_{p}" for b in lcfm.S2_BANDS for p in ("P10", "P25", "P50", "P75", "P90")]
    months = [f"{b}_M{k}" for b in lcfm.S2_BANDS for k in (1, 2, 3)]
    assert percentiles in targets and months in targets
    assert list(expected_result(lcfm_rows[2]).variables) == percentiles + months
    assert len(percentiles + months) == 56
    assert len([n for n in nodes_by_id(graph, "merge_cubes") if "overlap_resolver" not in n["arguments"]]) == 1
    (save,) = nodes_by_id(graph, "save_result")
    assert save["arguments"]["format"] == "netCDF"


def test_lcfm_sentinel1_graph(lcfm_rows, process_specs):
    graph = job_cube(lcfm_rows[1]).flat_graph()
    assert_valid(graph, process_specs)
    (load,) = nodes_by_id(graph, "load_collection")
    assert load["arguments"]["id"] == S1_COLLECTION
    assert load["arguments"]["bands"] == ["VV", "VH"]
    assert "properties" not in load["arguments"]
    # VH / VV (linear power ratio) appended over bands: array elements 1 and 0.
    (append,) = nodes_by_id(graph, "array_append")
    (divide,) = nodes_by_id(graph, "divide")
    elements = {n["arguments"]["index"] for n in nodes_by_id(graph, "array_element")}
    assert elements == {0, 1} and set(divide["arguments"]) == {"x", "y"}
    assert not nodes_by_id(graph, "log")  # not dB
    (quantiles,) = nodes_by_id(graph, "quantiles")
    assert quantiles["arguments"]["probabilities"] == [0.1, 0.25, 0.5, 0.75, 0.9]
    over_time = [n["arguments"] for n in nodes_by_id(graph, "apply_dimension") if n["arguments"]["dimension"] == "t"]
    assert [a["target_dimension"] for a in over_time] == ["bands"]
    targets = [n["arguments"]["target"] for n in nodes_by_id(graph, "rename_labels")]
    names = [f"{b}_{p}" for b in ("VV", "VH", "VH_VV") for p in ("P10", "P25", "P50", "P75", "P90")]
    assert targets == [["VV", "VH", "VH_VV"], names]
    assert list(expected_result(lcfm_rows[1]).variables) == names
    assert not expected_result(lcfm_rows[1]).has_time
