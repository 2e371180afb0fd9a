"""Qt6 / QGIS 4 readiness check of our own sources (``make lint``; CI has no internet for QGIS's checker).

PyQt6 knows only scoped enums (``Qt.AlignmentFlag.AlignLeft``, ``QgsTask.Flag.CanCancel``), has no
``exec_()``, and QGIS 4 imports Qt only through ``qgis.PyQt``. This walks each file's syntax tree and
asks the installed QGIS (PyQt5) bindings what every ``Class.Name`` is: a member of an enum reached
without its enum's name is reported with the scoped spelling, which works on QGIS 3.22+ and 4.

QGIS's own ``scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py`` covers the Qt classes through PyQt6; this
check adds the QGIS classes (whose Qt6 bindings are not installable here) and runs offline.

``python tools/check_qt6.py [PATH ...]``: exit 1 and one line per finding, 0 when clean.
"""

from __future__ import annotations

import ast
import enum
import functools
import importlib
import inspect
import sys
from pathlib import Path
from typing import Dict, Iterator, List

MODULES = ["qgis.PyQt.QtCore", "qgis.PyQt.QtGui", "qgis.PyQt.QtWidgets", "qgis.PyQt.QtTest", "qgis.PyQt.QtNetwork",
           "qgis.core", "qgis.gui", "qgis.analysis"]  # fmt: skip
REMOVED = {
    "QRegExp": "removed in Qt6: use QRegularExpression",
    "QDesktopWidget": "removed in Qt6: use QScreen (QApplication.primaryScreen())",
    "qApp": "removed in Qt6: use QApplication.instance()",
}
DEFAULT_PATHS = ["wac_extractor", "tests", "bench", "demo", "tools"]


@functools.cache
def classes() -> Dict[str, type]:
    """Every class the Qt and QGIS modules export, by name (as the code imports them)."""
    found: Dict[str, type] = {}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.update({key: value for key, value in vars(module).items() if inspect.isclass(value)})
    return found


def scoped_name(owner_name: str, owner: type, attr: str, value: object) -> str:
    """``owner.attr`` spelled through its enum: ``Qt.AlignmentFlag.AlignLeft``, ``Qgis.GeometryType.Polygon``."""
    enum_type = type(value)
    member = value.name if isinstance(value, enum.Enum) else attr
    qgis = classes().get("Qgis")
    if qgis is not None and getattr(qgis, enum_type.__name__, None) is enum_type:
        return f"Qgis.{enum_type.__name__}.{member}"  # QGIS moved many enums to Qgis (QgsWkbTypes.PolygonGeometry)
    if getattr(owner, enum_type.__name__, None) is enum_type:
        return f"{owner_name}.{enum_type.__name__}.{member}"
    return f"{enum_type.__qualname__}.{member}"


def is_enum_member(value: object) -> bool:
    if isinstance(value, enum.Enum):
        return True
    # sip enums of PyQt5 and QGIS 3 bindings: int subclasses defined on a class (Qt.AlignmentFlag)
    return isinstance(value, int) and not isinstance(value, bool) and type(value).__module__ not in ("builtins",)


def findings(path: Path, known: Dict[str, type]) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}:{getattr(node, 'col_offset', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in ("PyQt5", "PyQt6") or node.module == "qgis.PyQt.Qt":
                yield f"{where}: import from {node.module}: import Qt through qgis.PyQt.QtCore/QtGui/QtWidgets"
            for alias in node.names:
                if alias.name in REMOVED:
                    yield f"{where}: {alias.name} is {REMOVED[alias.name]}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("PyQt5", "PyQt6"):
                    yield f"{where}: import {alias.name}: import Qt through qgis.PyQt"
        elif isinstance(node, ast.Attribute):
            if node.attr == "exec_":
                yield f"{where}: exec_() is gone in PyQt6: write exec()"
                continue
            if not isinstance(node.value, ast.Name) or node.value.id not in known:
                continue
            owner = known[node.value.id]
            value = getattr(owner, node.attr, None)
            if value is None or inspect.isclass(value) or not is_enum_member(value):
                continue
            scoped = scoped_name(node.value.id, owner, node.attr, value)
            yield f"{where}: {node.value.id}.{node.attr} is an unscoped enum: write {scoped}"


def python_files(paths: List[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_file():
            yield path
        else:
            yield from (p for p in sorted(path.rglob("*.py")) if "__pycache__" not in p.parts)


def main(argv: List[str]) -> int:
    known = classes()
    if "Qt" not in known:
        print("check_qt6: qgis.PyQt is not importable; run it with the dev venv (make lint)", file=sys.stderr)
        return 2
    problems = [line for path in python_files(argv or DEFAULT_PATHS) for line in findings(path, known)]
    for line in problems:
        print(line)
    if problems:
        print(f"check_qt6: {len(problems)} finding(s): not ready for QGIS 4 / Qt6", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
