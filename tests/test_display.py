"""Display copies (COGs) on the map, a map that reads right, tile layers and bands that show up (issue 24).

A synthetic LCFM run (NetCDF results as the runner leaves them, written by ``bench.sampling``) stands
in for a backend run where the backend adds nothing to what is tested; the runner's own hook is
tested against the local backend.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsNumericFormatContext,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandGrayRenderer,
)
from qgis.PyQt.QtCore import QCoreApplication, QSize
from qgis.PyQt.QtGui import QColor

from bench.sampling import PIXEL, S1, S2
from wac_extractor.core.backends.signin import connect
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import create_tracker, open_tracker
from wac_extractor.core.results.composites import NDVI_SCALE, result_composites
from wac_extractor.qgis_glue.job_rows import STATUS_COLOURS
from wac_extractor.qgis_glue.layers import SENSOR_GROUPS, job_tiles_layer
from wac_extractor.qgis_glue.render import load_run
from wac_extractor.ui.job_model import JobTableModel
from wac_extractor.ui.run_map import RunMap

from .conftest import notebook_jobs


def write_tile(path: Path, west: float, north: float, size: int, variables, seed: int) -> None:
    """A NetCDF result of one tile (GDAL multidimensional API): every variable NaN on the same 5 % of pixels."""
    from osgeo import gdal, osr

    gdal.UseExceptions()
    dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(path))
    root = dataset.GetRootGroup()
    y_dim, x_dim = root.CreateDimension("y", None, None, size), root.CreateDimension("x", None, None, size)
    float64, float32 = gdal.ExtendedDataType.Create(gdal.GDT_Float64), gdal.ExtendedDataType.Create(gdal.GDT_Float32)
    for name, dim, values in (("y", y_dim, north - (np.arange(size) + 0.5) * PIXEL),
                              ("x", x_dim, west + (np.arange(size) + 0.5) * PIXEL)):  # fmt: skip
        array = root.CreateMDArray(name, [dim], float64)
        array.Write(values)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (size, size)).astype(np.float32)
    mask = rng.random((size, size)) < 0.05
    for i, name in enumerate(variables):
        array = root.CreateMDArray(name, [y_dim, x_dim], float32)
        array.SetSpatialRef(srs)
        array.SetNoDataValueDouble(float("nan"))
        values = base * (i + 1) + 1000 * i
        values[mask] = np.nan
        array.Write(values)
    dataset = None


PIXELS = 60  # 1.2 km tiles at 20 m: overviews of 30 and 15 px


def lcfm_run(folder: Path, tiles: int = 2) -> Path:
    """A finished LCFM run of ``tiles`` tiles in a row, S1 before S2 in the tracker; returns the tracker."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    size = int(PIXELS * PIXEL)
    rows = []
    for t in range(tiles):
        west, south = 600000 + t * size, 5600000
        for sentinel, variables in ((1, S1), (2, S2)):
            job = f"j-{sentinel}-{t}"
            (folder / job).mkdir(parents=True)
            write_tile(folder / job / "openEO.nc", west, south + size, PIXELS, variables, t)
            extent = {"west": west, "south": south, "east": west + size, "north": south + size, "crs": 32631}
            rows.append({"title": job, "sentinel": sentinel, "tile_id": f"32631_{west}_{south}", "recipe": "lcfm",
                         "spatial_extent": extent, "temporal_extent": ["2023-01-01", "2023-04-01"],
                         "max_cloud_cover": 85, "status": "finished", "result_status": "ok",
                         "result_files": json.dumps([f"{job}/openEO.nc"]),
                         "geometry": shapely.box(west, south, west + size, south + size).wkt})  # fmt: skip
    jobs = pd.DataFrame(rows)
    jobs["geometry"] = gpd.GeoSeries.from_wkt(jobs["geometry"], crs=32631).to_crs(4326).to_wkt()
    create_tracker(folder / "jobs.gpkg", jobs)
    return folder / "jobs.gpkg"


def netcdf(path: Path, variable: str) -> np.ndarray:
    dataset = gdal.Open(f'NETCDF:"{path}":{variable}')  # kept while its band is read
    return dataset.GetRasterBand(1).ReadAsArray().astype("float64")


def test_display_copies_are_cogs_with_overviews_equal_to_the_netcdf_and_written_once(tmp_path):
    lcfm_run(tmp_path, tiles=1)
    row = {"recipe": "lcfm", "temporal_extent": json.dumps(["2023-01-01", "2023-04-01"])}
    s2, s1 = tmp_path / "j-2-0" / "openEO.nc", tmp_path / "j-1-0" / "openEO.nc"
    copies = result_composites(s2, {**row, "sentinel": 2}) + result_composites(s1, {**row, "sentinel": 1})
    assert [c.path.name for c in copies] == [
        "S2_true_colour_2023-01.tif", "S2_true_colour_2023-02.tif", "S2_true_colour_2023-03.tif",
        "S2_true_colour_P50_2023-01_3m.tif", "S2_NDVI_P50_2023-01_3m.tif", "S1_P50_dB_2023-01_3m.tif",
    ]  # fmt: skip
    for copy in copies:
        dataset = gdal.Open(str(copy.path))
        assert dataset.GetDriver().ShortName == "GTiff"
        assert dataset.GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG", copy.path.name
        assert dataset.GetRasterBand(1).GetOverviewCount() >= 2, copy.path.name  # 30 and 15 px
    by_name = {c.path.name: gdal.Open(str(c.path)) for c in copies}
    february = by_name["S2_true_colour_2023-02.tif"]
    for band, variable in enumerate(("B04_M2", "B03_M2", "B02_M2"), start=1):
        expected = netcdf(s2, variable)
        assert february.GetRasterBand(band).GetDescription() == variable
        np.testing.assert_array_equal(february.GetRasterBand(band).ReadAsArray(), expected)  # NaN where masked
    ndvi = by_name["S2_NDVI_P50_2023-01_3m.tif"].GetRasterBand(1).ReadAsArray()
    np.testing.assert_allclose(ndvi, netcdf(s2, "NDVI_P50") * NDVI_SCALE, rtol=1e-6)  # NDVI units
    vv_db = by_name["S1_P50_dB_2023-01_3m.tif"].GetRasterBand(1).ReadAsArray()
    np.testing.assert_allclose(vv_db, 10 * np.log10(netcdf(s1, "VV_P50")), rtol=1e-5)  # dB
    written = {c.path: c.path.stat().st_mtime_ns for c in copies}
    result_composites(s2, {**row, "sentinel": 2})  # a resumed run, a reopened tracker: nothing written again
    assert all(path.stat().st_mtime_ns == written[path] for path in written if path.name.startswith("S2"))


def test_the_runner_writes_the_display_copies_when_a_result_is_checked(backend, tmp_path):
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:1])  # one S1 job, 3 months
    spec = BackendSpec(url=backend.url, parallel_jobs=1)
    ExtractionRunner(tracker, tmp_path / "out", [(spec, lambda: connect(backend.url, "basic", "demo", "demo"))],
                     poll_interval=0.2).run()  # fmt: skip
    (job_dir,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert sorted(p.name for p in job_dir.glob("*.tif")) == [f"S1_VV_VH_2023-0{m}.tif" for m in (1, 2, 3)]
    first = gdal.Open(str(job_dir / "S1_VV_VH_2023-01.tif"))
    assert first.GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG" and first.RasterCount == 3


def raster_files(source: str) -> set:
    """Every file a raster layer's source reads, through the mosaic's VRTs (``vrt://`` stripped)."""
    path = Path(source.removeprefix("vrt://"))
    text = path.read_bytes()[:64]
    if not text.lstrip().startswith(b"<VRTDataset"):
        return {str(path)}
    files = {str(path)}
    for element in ET.parse(path).getroot().iter("SourceFilename"):
        name = element.text or ""
        child = path.parent / name if element.get("relativeToVRT") == "1" else Path(name)
        files |= raster_files(str(child)) if not name.startswith("NETCDF:") else {name}
    return files


@pytest.mark.usefixtures("qgis_new_project")
def test_the_map_reads_display_copies_only_and_draws_without_hdf5_noise(tmp_path, capfd):
    tracker = lcfm_run(tmp_path)
    layers = load_run("WAC run", tracker, tmp_path)
    rasters = [layer for layer in QgsProject.instance().mapLayers().values() if isinstance(layer, QgsRasterLayer)]
    assert len(rasters) == 6 and len(layers) == 7  # 5 S2 mosaics + 1 S1, and the job tiles
    read = set().union(*(raster_files(layer.source()) for layer in rasters))
    assert read and not [f for f in read if "NETCDF" in f or f.endswith(".nc")]
    assert {Path(f).suffix for f in read} == {".vrt", ".tif"}
    capfd.readouterr()
    settings = QgsMapSettings()
    settings.setLayers(rasters)
    settings.setDestinationCrs(rasters[0].crs())
    settings.setExtent(rasters[0].extent())
    settings.setOutputSize(QSize(200, 100))
    job = QgsMapRendererParallelJob(settings)  # drawn in Qt's pool threads, as QGIS Desktop draws
    job.start()
    job.waitForFinished()
    assert not job.errors()
    err = capfd.readouterr().err
    assert "HDF5-DIAG" not in err and "RasterIO error" not in err


@pytest.mark.usefixtures("qgis_new_project")
def test_per_month_s2_is_on_top_s1_below_and_unticked_and_ndvi_reads_in_ndvi_units(tmp_path):
    load_run("WAC run", lcfm_run(tmp_path), tmp_path)  # the tracker lists S1 before S2
    root = QgsProject.instance().layerTreeRoot()
    run = root.findGroup("WAC run")
    assert [child.name() for child in run.children()] == [SENSOR_GROUPS[2], SENSOR_GROUPS[1]]
    s2, s1 = run.findGroup(SENSOR_GROUPS[2]), run.findGroup(SENSOR_GROUPS[1])
    assert s2.itemVisibilityChecked() and not s1.itemVisibilityChecked()  # one click shows S1
    assert [g.name() for g in s2.children()] == ["2023-01", "2023-02", "2023-03", "2023-01..2023-03"]
    order = [layer.name() for layer in root.layerOrder()]
    s1_at = next(i for i, name in enumerate(order) if name.startswith("S1"))
    assert all(order.index(f"S2 2023-0{m} true colour UTM 31N") < s1_at for m in (1, 2, 3))
    ndvi = next(node.layer() for node in s2.findLayers() if "NDVI" in node.layer().name())
    renderer = ndvi.renderer()
    assert (renderer.classificationMin(), renderer.classificationMax()) == (-0.2, 0.9)
    labels = [item.label for item in renderer.shader().rasterShaderFunction().colorRampItemList()]
    assert labels[0] == "-0.2" and labels[-1] == "0.9"
    stats = ndvi.dataProvider().bandStatistics(1)
    assert -1 <= stats.minimumValue and stats.maximumValue <= 10  # NDVI units (the synthetic file's x 10000)
    (s1_layer,) = [node.layer() for node in s1.findLayers()]
    assert [s1_layer.bandName(b).split(": ")[1] for b in (1, 2, 3)] == [
        "VV_P50 (dB)", "VH_P50 (dB)", "VH_VV_P50 (dB)"
    ]  # fmt: skip


def _draw(layer, extent: QgsRectangle, size: int = 100):
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


@pytest.mark.usefixtures("qgis_new_project")
def test_job_tiles_are_outlines_once_shown_and_a_pending_tile_is_tinted_once(tmp_path):
    tracker_path = lcfm_run(tmp_path)
    tracker = open_tracker(tracker_path)
    for index in (2, 3):  # tile 1's S1 and S2 jobs: still running
        tracker.update_row(index, status="running", result_status=None)
    layer = job_tiles_layer(tracker_path)
    QgsProject.instance().addMapLayer(layer)
    features = {f.id() - 1: f.geometry().boundingBox() for f in layer.getFeatures()}
    finished, running = features[0], features[2]
    finished.scale(1.3)
    image = _draw(layer, finished)
    assert QColor(image.pixel(50, 50)) == QColor("white")  # no tint over the shown result
    column = [QColor(image.pixel(50, y)) for y in range(50)]
    assert any(c.green() > c.red() + 40 for c in column)  # its green outline, above the centre
    image = _draw(layer, running)
    centre, colour = QColor(image.pixel(50, 50)), STATUS_COLOURS["running"]
    alpha = 50 / 255  # one 20 % fill over white, not two
    expected = [round(255 * (1 - alpha) + c * alpha) for c in (colour.red(), colour.green(), colour.blue())]
    assert max(abs(a - b) for a, b in zip((centre.red(), centre.green(), centre.blue()), expected)) <= 2


@pytest.fixture
def run_map(tmp_path, qgis_iface, qgis_new_project):
    tracker = open_tracker(lcfm_run(tmp_path))
    model = JobTableModel()
    model.set_tracker(tracker)
    run_map = RunMap(qgis_iface, model, lambda: str(tmp_path))
    run_map.start(tracker, str(tracker.path))
    load_run("WAC jobs", tracker.path, tmp_path)  # the run's mosaics are there first, as after a run
    qgis_iface.messageBar().clear_messages()
    return run_map


def wait_for_bands(run_map, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while run_map.band_tasks:
        assert time.monotonic() < deadline, "Add band's task did not end"
        QCoreApplication.processEvents()
        time.sleep(0.01)


def test_a_band_of_a_deleted_result_is_said_in_a_warning_and_adds_nothing(run_map, qgis_iface, tmp_path):
    job = run_map.model.job(1)
    for relative in json.loads(job["result_files"]):
        (tmp_path / relative).unlink()  # the user deleted the download
    run = QgsProject.instance().layerTreeRoot().findGroup("WAC jobs")
    before = len(run.findLayers())
    run_map.add_band_layers(1, ["B04_P50"])
    wait_for_bands(run_map)
    (warning,) = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning)
    assert "32631_600000_5600000: its bands could not be opened" in warning and "Retry the job" in warning
    assert len(run.findLayers()) == before


def test_tile_layers_go_on_top_of_the_run_visible_selected_and_named(run_map, qgis_iface):
    run = QgsProject.instance().layerTreeRoot().findGroup("WAC jobs")
    run_map.open_tile_layers(1)  # row 1: tile 0's S2 job
    group = run.children()[0]
    assert group.name() == "Tile 32631_600000_5600000" and group.isExpanded() and group.itemVisibilityChecked()
    names = [node.layer().name() for node in group.findLayers()]
    assert names[0] == "S2 2023-01 true colour 32631_600000_5600000" and len(names) == 5
    assert all(Path(node.layer().source()).suffix == ".tif" for node in group.findLayers())
    assert qgis_iface.activeLayer().name() == names[0]
    (message,) = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)
    assert "S2 2023-01 true colour 32631_600000_5600000" in message and "2 more" in message


def test_an_added_band_is_named_stretched_on_its_cut_on_top_and_selected(run_map, qgis_iface):
    run_map.open_tile_layers(1)
    run = QgsProject.instance().layerTreeRoot().findGroup("WAC jobs")
    run_map.add_band_layers(1, ["B04_P50"])
    # Written and opened in a task: nothing is added while the UI thread waits, only once it is done.
    assert run.findGroup("Bands 32631_600000_5600000 S2 2023-01..2023-03") is None and run_map.band_tasks
    wait_for_bands(run_map)
    group = run.children()[0]
    assert group.name() == "Bands 32631_600000_5600000 S2 2023-01..2023-03" and group.itemVisibilityChecked()
    (layer,) = [node.layer() for node in group.findLayers()]
    assert layer.name() == "B04_P50 32631_600000_5600000 2023-01..2023-03"
    assert Path(layer.source()).suffix == ".tif" and qgis_iface.activeLayer() is layer
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandGrayRenderer)
    low, high = layer.dataProvider().cumulativeCut(1, 0.02, 0.98)
    stats = layer.dataProvider().bandStatistics(1)
    enhancement = renderer.contrastEnhancement()
    assert (enhancement.minimumValue(), enhancement.maximumValue()) == pytest.approx((low, high))
    assert stats.minimumValue < low < high < stats.maximumValue  # the cut, not the full range
    label = renderer.legendSettings().numericFormat().formatDouble(high, QgsNumericFormatContext())
    assert re.fullmatch(r"-?[\d,]+(\.\d)?", label) and len(label.replace(",", "").lstrip("-")) <= 6, label
    (message,) = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)[-1:]
    assert "B04_P50 32631_600000_5600000 2023-01..2023-03" in message
