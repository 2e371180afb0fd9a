"""The plugin loads in a QGIS without openeo and offers to install it (the README's promise)."""

from __future__ import annotations

import subprocess
import sys

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QPushButton

from wac_extractor import dependencies, plugin

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
