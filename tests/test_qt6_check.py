"""The Qt6 / QGIS 4 readiness check (tools/check_qt6.py, run by ``make lint``) finds what PyQt6 rejects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "tools" / "check_qt6.py"

FIXTURE = """\
from qgis.core import Qgis, QgsTask, QgsWkbTypes
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QMenu

ALIGN = Qt.AlignLeft
FLAGS = QgsTask.CanCancel
LEVEL = Qgis.Info
POLYGON = QgsWkbTypes.PolygonGeometry
SCOPED = Qt.AlignmentFlag.AlignRight, QgsTask.Flag.CanCancel, Qgis.MessageLevel.Info


def show(menu: QMenu, point):
    menu.exec_(point)
"""


def run_check(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), *map(str, paths)], capture_output=True, text=True, cwd=REPO)


def test_unscoped_enums_exec_and_pyqt5_imports_are_found_with_their_fix(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(FIXTURE)
    done = run_check(planted)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert f"{planted}:5:8: Qt.AlignLeft is an unscoped enum: write Qt.AlignmentFlag.AlignLeft" in lines
    assert any("QgsTask.CanCancel" in line and "write QgsTask.Flag.CanCancel" in line for line in lines)
    assert any("Qgis.Info" in line and "write Qgis.MessageLevel.Info" in line for line in lines)
    assert any("QgsWkbTypes.PolygonGeometry" in line and "write Qgis.GeometryType.Polygon" in line for line in lines)
    assert any(":13:" in line and "exec_()" in line for line in lines)
    assert not any(":9:" in line for line in lines), "scoped spellings are fine"
    assert len(lines) == 5

    (tmp_path / "imports.py").write_text("from PyQt5.QtCore import Qt\nfrom qgis.PyQt.QtCore import QRegExp\n")
    found = run_check(tmp_path / "imports.py").stdout
    assert "import Qt through qgis.PyQt" in found and "QRegExp is removed in Qt6" in found


def test_the_project_is_clean():
    done = run_check()
    assert done.returncode == 0, done.stdout
