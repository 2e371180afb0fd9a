"""`make demo` as a new user runs it: quiet, no leaked sockets, and a project that opens on the map."""

from __future__ import annotations

import os
import subprocess
import sys

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .conftest import REPO


def test_the_demo_prints_a_summary_and_leaves_a_project_that_opens_on_the_run(tmp_path, qgis_app):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-m", "demo.run_demo"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "WAC_DEMO_OUT": str(out), "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    printed = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, "\n".join(printed[-40:])
    assert len(printed) <= 40, "\n".join(printed)  # progress when it changed, and a summary
    assert not [line for line in printed if "ResourceWarning" in line or "HDF5-DIAG" in line or "Traceback" in line]
    assert "jobs per status: {'finished': 8}" in done.stdout

    project = QgsProject()  # a fresh project, as QGIS Desktop opening demo.qgz
    assert project.read(str(out / "demo.qgz"))
    assert project.crs().authid() == "EPSG:32631"  # the tiles' UTM zone, not the job table's EPSG:4326
    layers = list(project.mapLayers().values())
    tiles = next(layer for layer in layers if isinstance(layer, QgsVectorLayer))
    extent = QgsCoordinateTransform(tiles.crs(), project.crs(), project).transformBoundingBox(tiles.extent())
    view = project.viewSettings().defaultViewExtent()
    assert view.crs() == project.crs() and view.contains(extent) and view.width() < 2 * extent.width()

    times = project.timeSettings()
    months = times.temporalRange()
    assert (months.begin().toString("yyyy-MM-dd"), months.end().toString("yyyy-MM-dd")) == ("2023-01-01", "2023-04-01")
    assert (times.timeStep(), times.timeStepUnit()) == (1, Qgis.TemporalUnit.Months)

    mosaics = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
    # One layer per sensor, period and style, not per tile: LCFM S2 true colour x 3 months, P50, NDVI; S1 P50.
    assert len(mosaics) == 6 and all(layer.isValid() for layer in mosaics)
    assert all(layer.crs() == QgsCoordinateReferenceSystem("EPSG:32631") for layer in mosaics)
    root = project.layerTreeRoot().findGroup("WAC demo")
    assert root is not None and not root.isExpanded()
    january = next(layer for layer in mosaics if layer.name().startswith("S2 2023-01 true colour"))
    assert january.temporalProperties().isActive()
    # One layer over the four 10 km windows (west 664,000 and 684,000, south 5,611,120 and 5,631,120).
    assert january.extent().toString(0) == "664000,5611120 : 694000,5641120"
    project.clear()  # before the test's QGIS goes: a project left to the collector crashed at exit
