"""QGIS's own convention: the mouse wheel over a field that has no focus scrolls the dock, never changes the value.

Scrolling down a long dock over the cloud slider moved it from 85 % to 100 % without a click (issue 24).
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication, QEvent, QObject, Qt
from qgis.PyQt.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QComboBox, QSlider, QWidget

GUARDED = (QAbstractSpinBox, QComboBox, QSlider)


class WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget) or watched.hasFocus():
            return False
        area = _scroll_area(watched)
        if area is not None:  # the dock scrolls as if the field were not there
            QCoreApplication.sendEvent(area.verticalScrollBar(), event)
        return True


def _scroll_area(widget: QWidget):
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    return parent


def guard_wheel(root: QWidget, guard: WheelGuard) -> None:
    """Every value field under ``root`` takes the wheel only once clicked or tabbed into."""
    for kind in GUARDED:
        for field in root.findChildren(kind):
            field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            field.installEventFilter(guard)
