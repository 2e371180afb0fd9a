"""What the recipe graphs ask a backend to compute, callbacks evaluated on pixel values (issue 26: mutation score).

``test_process_graphs.py`` checks which processes a graph holds; these tests also run the small
callbacks (SCL flags, cover fractions, permanent snow, the monthly SCL mask) on sample values, the way
a backend applies them per pixel, and check the row handling around the graphs. Each kills mutants of
``wac_extractor/core/recipes/*.py`` that survived; tests/README.md lists the mutant each one was seen
failing on. None starts the local backend.
"""

from __future__ import annotations

import pytest

from wac_extractor.core.recipes import check_recipe, lcfm, monthly, row_recipe
from wac_extractor.core.recipes.process_graphs import (
    BackendCapabilities,
    ExpectedResult,
    backend_capabilities,
    check_temporal_coverage,
    expected_result,
    expected_variables,
    job_cube,
    required_processes,
)
from wac_extractor.core.recipes.sentinel import S1_COLLECTION, S2_COLLECTION

from .test_process_graphs import NOTEBOOK_EXTENT, nodes_by_id, notebook_rows, walk_nodes

# The openEO processes the recipes' callbacks use, on plain Python values.
OPERATORS = {
    "eq": lambda a: a["x"] == a["y"],
    "neq": lambda a: a["x"] != a["y"],
    "gt": lambda a: a["x"] > a["y"],
    "or": lambda a: a["x"] or a["y"],
    "and": lambda a: a["x"] and a["y"],
    "not": lambda a: not a["x"],
    "add": lambda a: a["x"] + a["y"],
    "subtract": lambda a: a["x"] - a["y"],
    "multiply": lambda a: a["x"] * a["y"],
    "divide": lambda a: a["x"] / a["y"],
    "log": lambda a: __import__("math").log(a["x"], a["base"]),
    "any": lambda a: any(a["data"]),
    "array_create": lambda a: list(a["data"]),
    "array_append": lambda a: list(a["data"]) + [a["value"]],
}


def run_callback(process_graph: dict, **parameters):
    """Evaluate a callback's flat graph; ``array_element`` takes ``index`` on lists, ``label`` on dicts."""
    done: dict = {}

    def value(arg):
        if isinstance(arg, dict) and "from_node" in arg:
            return node(arg["from_node"])
        if isinstance(arg, dict) and "from_parameter" in arg:
            return parameters[arg["from_parameter"]]
        if isinstance(arg, list):
            return [value(item) for item in arg]
        return arg

    def node(name):
        if name not in done:
            spec = process_graph[name]
            args = {key: value(arg) for key, arg in spec["arguments"].items()}
            if spec["process_id"] == "array_element":
                key = args["label"] if "label" in args else args["index"]
                done[name] = args["data"][key]
            else:
                done[name] = OPERATORS[spec["process_id"]](args)
        return done[name]

    (result,) = [name for name, spec in process_graph.items() if spec.get("result")]
    return node(result)


def callbacks(graph: dict, process_id: str, argument: str, holding: str, without: str = "") -> list:
    """The callbacks (``argument`` of ``process_id`` nodes) that use the process ``holding`` and not ``without``."""
    found = []
    for node in nodes_by_id(graph, process_id):
        inner = node["arguments"].get(argument, {}).get("process_graph", {})
        used = {n["process_id"] for n in inner.values()}
        if holding in used and without not in used:
            found.append(inner)
    return found


@pytest.fixture
def lcfm_graphs():
    """Built in each test (not once per module): mutmut runs, for a mutant, only the tests that called its code."""
    rows = notebook_rows("lcfm")
    return {sentinel: job_cube(rows[sentinel]).flat_graph() for sentinel in (1, 2)}


def test_the_scl_flags_per_observation(lcfm_graphs):
    (flags,) = callbacks(lcfm_graphs[2], "apply_dimension", "process", "any")
    clouds = {3, 8, 9, 10}
    for scl in range(12):
        expected = [scl in clouds, scl == 1, scl == 2, scl == 11, scl == 6, scl == 4, scl == 5, scl != 0]
        assert run_callback(flags, data=[scl]) == expected, f"SCL {scl}"


def test_cover_fractions_divide_each_count_by_the_observed_dates(lcfm_graphs):
    (covers,) = callbacks(lcfm_graphs[2], "apply_dimension", "process", "divide", without="array_modify")  # not NDVI
    counts = [1, 2, 3, 4, 5, 6, 7, 10]  # clouds .. notveg, then observed
    assert run_callback(covers, data=counts) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])


def test_snow_is_permanent_above_90_percent_of_the_cloud_free_unsaturated_dates(lcfm_graphs):
    (snow,) = callbacks(lcfm_graphs[2], "reduce_dimension", "reducer", "gt")

    def covers(clouds, saturated, snow_cover):
        return [clouds, saturated, 0.0, snow_cover, 0.0, 0.0, 0.0]

    assert run_callback(snow, data=covers(0.2, 0.1, 0.65)) is True  # 0.65 / 0.7 = 93 %
    assert run_callback(snow, data=covers(0.2, 0.1, 0.6)) is False  # 86 %
    assert run_callback(snow, data=covers(0.0, 0.0, 0.95)) is True
    assert run_callback(snow, data=covers(0.5, 0.0, 0.44)) is False  # 88 % of the clear half
    assert run_callback(snow, data=covers(0.0, 0.5, 0.46)) is True  # 92 % of the unsaturated half


def test_every_merge_of_the_scl_mask_merges_two_cubes_and_sums_run_over_time(lcfm_graphs):
    graph = lcfm_graphs[2]
    merges = nodes_by_id(graph, "merge_cubes")
    assert len(merges) == 9  # 8 in the SCL mask, then percentiles with monthly medians
    for merge in merges:
        assert {"from_node"} == set(merge["arguments"]["cube1"]) == set(merge["arguments"]["cube2"]), merge
    dimensions = sorted(n["arguments"]["dimension"] for n in nodes_by_id(graph, "reduce_dimension"))
    # flags summed over t, masked and observed dates summed over t; permanent snow and band() over bands
    assert dimensions.count("t") == 3 and set(dimensions) == {"t", "bands"}


def test_monthly_medians_become_one_band_per_month(lcfm_graphs):
    (as_bands,) = callbacks(lcfm_graphs[2], "apply_dimension", "process", "array_create", without="array_element")
    assert run_callback(as_bands, data=[1.0, 2.0, 3.0]) == [1.0, 2.0, 3.0]


def test_sentinel1_ratio_and_db(lcfm_graphs):
    (ratio,) = callbacks(lcfm_graphs[1], "apply_dimension", "process", "array_append")
    assert run_callback(ratio, data=[2.0, 0.5]) == [2.0, 0.5, 0.25]  # VV, VH, VH/VV
    graph = job_cube(notebook_rows("monthly")[1]).flat_graph()
    (db,) = callbacks(graph, "apply", "process", "log")
    assert run_callback(db, x=100.0) == pytest.approx(20.0)


@pytest.mark.parametrize("recipe", ["lcfm", "monthly"])
def test_sentinel1_jobs_load_the_rows_extent_and_need_no_cloud_cover(recipe):
    row = notebook_rows(recipe)[1].drop(labels=["max_cloud_cover"])  # a notebook S1 row may lack it
    (load,) = nodes_by_id(job_cube(row).flat_graph(), "load_collection")
    assert load["arguments"]["spatial_extent"] == NOTEBOOK_EXTENT
    assert load["arguments"]["temporal_extent"] == ["2023-01-01", "2023-04-01"]


def test_the_monthly_scl_mask_refers_to_scl_by_name_and_masks_its_classes():
    graph = job_cube(notebook_rows("monthly")[2]).flat_graph()
    (mask,) = callbacks(graph, "reduce_dimension", "reducer", "eq")
    elements = [n for n in mask.values() if n["process_id"] == "array_element"]
    assert {n["arguments"].get("label") for n in elements} == {"SCL"}  # by name, as since 0.1
    masked = {scl for scl in range(12) if run_callback(mask, data={"SCL": scl})}
    assert masked == {0, 1, 3, 8, 9, 10, 11}


def test_the_dilated_scl_mask_gets_the_scl_band_and_cdse_parameters():
    caps = BackendCapabilities(processes=frozenset({"to_scl_dilation_mask"}))
    graph = job_cube(notebook_rows("monthly")[2], caps).flat_graph()
    (dilation,) = nodes_by_id(graph, "to_scl_dilation_mask")
    arguments = dict(dilation["arguments"])
    source = graph[arguments.pop("data")["from_node"]]
    assert (source["process_id"], source["arguments"]["bands"]) == ("filter_bands", ["SCL"])
    assert arguments == {"scl_band_name": "SCL", **monthly.SCL_DILATION_ARGS}
    filtered = sorted(tuple(n["arguments"]["bands"]) for n in nodes_by_id(graph, "filter_bands"))
    assert filtered == [tuple(monthly.S2_BANDS), ("SCL",)]
    (mask,) = callbacks(graph, "reduce_dimension", "reducer", "eq")
    assert {scl for scl in range(12) if run_callback(mask, data={"SCL": scl})} == {0, 1}


def test_row_recipe_defaults_only_for_a_missing_or_empty_cell():
    for empty in ({}, {"recipe": None}, {"recipe": float("nan")}, {"recipe": ""}, {"recipe": "  "}, ("no", "get")):
        assert row_recipe(empty) == "lcfm", empty
    assert row_recipe({"recipe": " Monthly "}) == "monthly" == check_recipe("MONTHLY")
    for bad in (2.0, "weekly"):
        with pytest.raises(ValueError, match="is not a known recipe; use one of lcfm, monthly"):
            row_recipe({"recipe": bad})


def test_what_each_result_must_hold():
    lcfm_rows, monthly_rows = notebook_rows("lcfm"), notebook_rows("monthly")
    s1, s2 = lcfm.s1_variables(), lcfm.s2_variables(3)
    assert expected_result(lcfm_rows[1]) == ExpectedResult(tuple(s1), has_time=False, int16=False)
    assert expected_result(lcfm_rows[2]) == ExpectedResult(tuple(s2), has_time=False, int16=True)
    assert expected_result(monthly_rows[1]) == ExpectedResult(("VV", "VH"), has_time=True, int16=False)
    assert expected_result(monthly_rows[2]) == ExpectedResult(tuple(monthly.S2_BANDS), has_time=True, int16=False)
    without_sensor = {"recipe": "lcfm", "temporal_extent": ["2023-01-01", "2023-04-01"]}
    assert expected_variables(without_sensor) == s2  # a row without sensor is Sentinel-2
    assert expected_variables({**without_sensor, "recipe": "monthly"}) == monthly.S2_BANDS
    assert expected_variables(monthly_rows[1]) == ["VV", "VH"]


def test_an_unknown_sensor_is_refused_with_the_choices():
    row = notebook_rows("lcfm")[2].copy()
    row["sentinel"] = 3
    with pytest.raises(ValueError, match=r"sentinel: 3 is not a known sensor; use 1 \(Sentinel-1\) or 2"):
        job_cube(row)


def coverage(first, last):
    return BackendCapabilities(temporal_extents=((S2_COLLECTION, (first, last)),))


def test_dates_inside_the_collection_pass_and_the_end_is_exclusive():
    caps = coverage("2023-01-01", "2024-12-31")
    check_temporal_coverage(S2_COLLECTION, ["2023-01-01", "2025-01-01"], caps)  # half-open: up to the last day
    check_temporal_coverage(S1_COLLECTION, ["1990-01-01", "2090-01-01"], caps)  # no extent known: nothing checked
    for window, asked in ((["2023-01-01", "2025-01-02"], "2023-01-01 to 2025-01-02"),
                          (["2022-12-31", "2024-01-01"], "2022-12-31 to 2024-01-01"),
                          (["2022-12-15T00:00:00Z", "2025-01-01T00:00:00Z"], "2022-12-15 to 2025-01-01"),
                          (["2022-12-01", "2023-02-01"], "2022-12-01 to 2023-02-01")):  # fmt: skip
        with pytest.raises(ValueError) as error:
            check_temporal_coverage(S2_COLLECTION, window, caps)
        assert f"covers 2023-01-01 to 2024-12-31 on this backend, but the job asks for {asked};" in str(error.value)


def test_open_ends_of_a_collection_are_named_open():
    with pytest.raises(ValueError, match="covers open to 2020-06-30 on this backend, but the job asks for 2020-06-01"):
        check_temporal_coverage(S2_COLLECTION, ["2020-06-01", "2020-07-02"], coverage(None, "2020-06-30"))
    with pytest.raises(ValueError, match="covers 2020-06-01 to open on this backend, but the job asks for 2020-05-01"):
        check_temporal_coverage(S2_COLLECTION, ["2020-05-01", "2020-07-01"], coverage("2020-06-01", None))


class Described:
    """What ``backend_capabilities`` reads from a connection: the process list and collection metadata."""

    def __init__(self, processes, extents):
        self.processes, self.extents = processes, extents

    def list_processes(self):
        return [{"id": p} for p in self.processes]

    def describe_collection(self, collection_id):
        return self.extents[collection_id]


def test_backend_capabilities_read_processes_and_date_parts_of_the_extents():
    connection = Described(["load_collection", "to_scl_dilation_mask"], {
        S1_COLLECTION: {},  # no extent at all
        S2_COLLECTION: {"extent": {"temporal": {"interval": [["2017-03-28T00:00:00Z", "2025-01-01T12:00:00Z"]]}}},
    })  # fmt: skip
    caps = backend_capabilities(connection)
    assert caps.processes == frozenset({"load_collection", "to_scl_dilation_mask"}) and caps.has_scl_dilation
    assert caps.temporal_extent(S1_COLLECTION) == (None, None)
    assert caps.temporal_extent(S2_COLLECTION) == ("2017-03-28", "2025-01-01")
    only_s2 = backend_capabilities(connection, [S2_COLLECTION])
    assert only_s2.temporal_extents == ((S2_COLLECTION, ("2017-03-28", "2025-01-01")),)
    connection.extents[S1_COLLECTION] = {"extent": {"temporal": {"interval": [["2014-10-03T00:00:00Z", None]]}}}
    assert backend_capabilities(connection).temporal_extent(S1_COLLECTION) == ("2014-10-03", None)


def process_ids(graph: dict) -> list:
    return sorted({node["process_id"] for node in walk_nodes(graph)})


@pytest.mark.parametrize("recipe", ["lcfm", "monthly"])
def test_required_processes_are_every_process_of_the_graphs(recipe):
    rows = notebook_rows(recipe)
    for sentinel in (1, 2):
        assert required_processes(sentinel, recipe) == process_ids(job_cube(rows[sentinel]).flat_graph())
    assert "load_collection" in required_processes(1, recipe) and "save_result" in required_processes(2, recipe)
    assert required_processes(2) == required_processes(2, "lcfm")
    assert ("apply_kernel" in required_processes(2, recipe)) == (recipe == "lcfm")
    assert ("log" in required_processes(1, recipe)) == (recipe == "monthly")
