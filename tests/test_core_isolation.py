"""The core must stay importable without QGIS or Qt (headless CLI, tests, other tools)."""

import json
import pkgutil
import subprocess
import sys

import wac_extractor.core


def test_core_imports_neither_qgis_nor_pyqt():
    modules = [m.name for m in pkgutil.walk_packages(wac_extractor.core.__path__, "wac_extractor.core.")]
    assert "wac_extractor.core.planning.job_table" in modules and "wac_extractor.core.jobs.runner" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'sip'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
