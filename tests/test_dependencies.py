"""The dependency installer: pins what QGIS has, installs the rest into the plugin's own folder."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from wac_extractor.qgis_glue import dependencies


def test_constraints_pin_what_qgis_has_and_keep_project_rules():
    lines = dependencies.qgis_constraints()
    assert f"numpy=={importlib.metadata.version('numpy')}" in lines
    assert f"GDAL=={importlib.metadata.version('GDAL')}" in lines
    assert "geopandas<1" in lines
    assert not any(line.startswith("numpy<") for line in lines)  # the exact pin replaces the range


def test_missing_reports_absent_and_old_packages():
    assert dependencies.missing({"openeo": "0.53.0"}) == []
    assert dependencies.missing() == []  # the venv's openeo is in the supported range
    assert dependencies.missing({"surely-not-installed-pkg": "1.0"}) == [
        "surely-not-installed-pkg==1.0 (not installed)"
    ]
    assert dependencies.missing({"openeo": "99.0"}) == [f"openeo==99.0 (found {importlib.metadata.version('openeo')})"]


def test_remove_distributions_deletes_files_listed_in_record(tmp_path):
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text("")
    (tmp_path / "numpy.libs").mkdir()
    info = tmp_path / "numpy-1.26.4.dist-info"
    info.mkdir()
    (info / "RECORD").write_text(
        "numpy/__init__.py,,\nnumpy.libs/x.so,,\n../../bin/f2py,,\nnumpy-1.26.4.dist-info/RECORD,,\n"
    )
    (tmp_path / "openeo").mkdir()
    (tmp_path / "openeo-0.53.0.dist-info").mkdir()
    assert dependencies.remove_distributions(tmp_path, ["NumPy"]) == ["numpy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openeo", "openeo-0.53.0.dist-info"]


def test_install_into_a_target_folder_keeps_qgis_packages(tmp_path):
    lines = []
    code = dependencies.install(tmp_path / "deps", on_line=lines.append)
    assert code == 0, "\n".join(lines[-20:])
    installed = {p.name for p in (tmp_path / "deps").iterdir()}
    assert "openeo" in installed and any(n.startswith("openeo-0.53.0") for n in installed)
    assert not {"numpy", "pandas", "shapely", "pyproj", "osgeo"} & installed
    # openeo from the target folder imports next to QGIS's own numpy/pandas (this venv's, pinned above).
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import openeo, numpy; print(openeo.__file__, numpy.__file__)"
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "deps")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    openeo_file, numpy_file = out.stdout.split()
    assert openeo_file.startswith(str(tmp_path / "deps")) and not numpy_file.startswith(str(tmp_path))
