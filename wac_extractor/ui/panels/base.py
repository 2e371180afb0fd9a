"""What every panel of the dock shares: its settings, the fields its problems are shown at, a change signal.

A section panel is a ``QgsCollapsibleGroupBox`` with a form whose rows wrap under their labels,
so the dock fits at 300 px (beside the Layers panel on a laptop) and never clips a field.
"""

from __future__ import annotations

import re
from typing import Dict, List

from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QSizePolicy, QVBoxLayout, QWidget

from ...definitions import settings
from ...definitions.settings import Bound


class Panel(QWidget):
    """A part of the dock that owns its widgets, its settings keys and the fields its problems name.

    A panel loads its settings at the end of its ``__init__``, once its widgets exist.
    """

    changed = pyqtSignal()  # an input of the job plan changed: the dock schedules a new preview

    def __init__(self, parent=None):
        super().__init__(parent)
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(0, 0, 0, 0)

    def bound_settings(self) -> List[Bound]:
        """This panel's settings, each with the getter and setter of its widget."""
        return []

    def load_settings(self) -> None:
        settings.load(self.bound_settings())

    def save_settings(self) -> None:
        settings.save(self.bound_settings())

    def problem_fields(self) -> Dict[str, QWidget]:
        """The inputs a problem message names, by the message's start (core errors start with the field's name)."""
        return {}


class SectionPanel(Panel):
    """A collapsible section of the dock with a form (``self.form``) that wraps long rows."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.box = QgsCollapsibleGroupBox(title)
        # Its own saving keys on widget names and runs in the C++ destructor; ours saves at each click.
        self.box.setSaveCollapsedState(False)
        self.collapsed_setting = settings.section_collapsed(re.sub(r"\W+", "_", title.lower()))
        self.box.setCollapsed(self.collapsed_setting.read())
        self.box.collapsedStateChanged.connect(self.collapsed_setting.write)
        self.form = QFormLayout(self.box)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        # A narrow dock puts a field under its label, never clips it.
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.column.addWidget(self.box)


def shrinkable(*widgets: QWidget) -> None:
    """Let buttons, combos and file fields get narrower than their text: the dock stays usable at 240 px."""
    for widget in widgets:
        widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
