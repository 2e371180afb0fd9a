"""The plugin loads in a QGIS without openeo and offers to install it (the README's promise)."""

from __future__ import annotations

import subprocess
import sys

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtWidgets import QPushButton

from wac_extractor import plugin
from wac_extractor.qgis_glue import dependencies

from .conftest import REPO

BLOCK_OPENEO = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "openeo" or name.startswith("openeo."):
            raise ModuleNotFoundError("No module named 'openeo' (blocked by the test)")
sys.meta_path.insert(0, Block())
"""


def test_the_plugin_module_imports_without_openeo():
    code = BLOCK_OPENEO + "import wac_extractor, wac_extractor.plugin; print('loaded', 'openeo' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("loaded False")


def test_without_openeo_the_plugin_offers_to_install_it_and_opens_no_dock(qgis_iface, monkeypatch):
    monkeypatch.setattr(dependencies, "missing", lambda *a, **k: ["openeo==0.53.0 (not installed)"])
    providers = len(QgsApplication.processingRegistry().providers())
    bar = qgis_iface.messageBar()
    bar.clearWidgets()
    wac = plugin.WacExtractorPlugin(qgis_iface)
    wac.initGui()
    try:
        assert wac.provider is None and len(QgsApplication.processingRegistry().providers()) == providers
        offer = bar.currentItem()
        assert offer is not None and "openeo==0.53.0 (not installed)" in offer.text()
        assert [b.text() for b in offer.findChildren(QPushButton)] == ["Install dependencies"]
        wac.action.setChecked(True)  # the toolbar button: no dock without openeo, the offer again
        assert wac.dock is None and not wac.action.isChecked()
    finally:
        wac.unload()


def fake_openeo(folder, version: str):
    """An openeo of another release, as another plugin (the official openEO plugin, via qpip) installs it."""
    (folder / "openeo").mkdir(parents=True)
    (folder / "openeo" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    info = folder / f"openeo-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: openeo\nVersion: {version}\n")


def test_another_plugins_openeo_of_another_release_is_named_with_what_to_do(tmp_path):
    fake_openeo(tmp_path / "dependencies", "0.60.0")
    code = "import openeo; from wac_extractor.qgis_glue import dependencies; print(dependencies.openeo_conflict())"
    env = {"PYTHONPATH": f"{tmp_path / 'dependencies'}:{REPO}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    message = done.stdout.strip()
    assert message.startswith(f"QGIS has openeo 0.60.0 (from {tmp_path / 'dependencies'}")
    assert (
        "runs need openeo 0.48.0 to 0.53.x" in message
        and "pip install --target" in message
        and "restart QGIS" in message
    )
    # The release the runner is built for, imported once by whichever plugin came first: no conflict.
    same = (
        "import openeo; from wac_extractor.qgis_glue import dependencies; print(repr(dependencies.openeo_conflict()))"
    )
    done = subprocess.run([sys.executable, "-c", same], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == "''", done.stderr[-2000:]


def test_with_a_conflicting_openeo_the_plugin_says_why_and_offers_no_useless_install(qgis_iface, monkeypatch):
    monkeypatch.setattr(dependencies, "openeo_conflict", lambda *a: "QGIS has openeo 0.60.0 (from /x) ...")
    bar = qgis_iface.messageBar()
    bar.clearWidgets()
    bar.clear_messages()
    wac = plugin.WacExtractorPlugin(qgis_iface)
    wac.initGui()
    try:
        shown = bar.get_messages(Qgis.MessageLevel.Critical)
        assert len(shown) == 1 and "QGIS has openeo 0.60.0" in shown[0]
        assert bar.currentItem() is None  # no "Install dependencies": our folder's copy would never be imported
        wac.action.setChecked(True)
        assert wac.dock is None and not wac.action.isChecked()
        assert len(bar.get_messages(Qgis.MessageLevel.Critical)) == 2  # said again, with what to do
    finally:
        wac.unload()
