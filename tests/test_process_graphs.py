"""Process graphs per job row, checked against the official openEO process specifications."""

import importlib.util
import json
from pathlib import Path

import pytest

from wac_extractor.core.planning import PlanRequest, plan_grid
from wac_extractor.core.process_graphs import (
    S1_COLLECTION,
    S2_BANDS,
    S2_COLLECTION,
    BackendCapabilities,
    job_cube,
)

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


@pytest.fixture(scope="module")
def rows():
    request = PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3)
    table = plan_grid(request, west=664000, south=5611120, crs="EPSG:32631")
    return {sentinel: table[table["sentinel"] == sentinel].iloc[0] for sentinel in (1, 2)}


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
