"""The dock's "Time, recipe and sensors" section: dates, months per job, recipe, S1/S2, cloud limit, tile size."""

from __future__ import annotations

from typing import Dict, List

from qgis.PyQt.QtCore import QDate, Qt
from qgis.PyQt.QtGui import QFont, QFontMetrics
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDateEdit, QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget

from ...core.planning.job_table import PlanRequest
from ...core.recipes import RECIPE_LABELS, RECIPES
from ...core.recipes.process_graphs import COLLECTIONS
from ...definitions import settings
from ...definitions.settings import Bound
from .base import SectionPanel, shrinkable

DATE_FORMAT = "yyyy-MM-dd"


class TimeRecipePanel(SectionPanel):
    def __init__(self, parent=None):
        super().__init__("Time, recipe and sensors", parent)
        self._build()
        changes = (
            self.start_date.dateChanged,
            self.end_date.dateChanged,
            self.window_months.valueChanged,
            self.recipe.currentIndexChanged,
            self.s1.toggled,
            self.s2.toggled,
            self.cloud.valueChanged,
            self.tile_km.valueChanged,
        )
        for signal in changes:
            signal.connect(self.changed.emit)
        self.load_settings()

    def _build(self) -> None:
        self.start_date = QDateEdit(calendarPopup=True, displayFormat=DATE_FORMAT)
        self.end_date = QDateEdit(calendarPopup=True, displayFormat=DATE_FORMAT)
        self.window_months = QSpinBox(minimum=1, maximum=24, toolTip="Months per job (the time window of a job)")
        shrinkable(self.start_date, self.end_date)
        self.form.addRow("Start", self.start_date)
        self.form.addRow("End (exclusive)", self.end_date)
        self.form.addRow("Months per job", self.window_months)
        self.recipe = QComboBox(toolTip="What each job computes")
        for name, label in RECIPE_LABELS.items():
            self.recipe.addItem(label, name)
            self.recipe.setItemData(self.recipe.count() - 1, RECIPES[name], Qt.ItemDataRole.ToolTipRole)
        shrinkable(self.recipe)
        self.form.addRow("Recipe", self.recipe)
        self.s1 = QCheckBox("Sentinel-1 (VV, VH)")
        self.s2 = QCheckBox("Sentinel-2 L2A")
        self.form.addRow(self.s1)
        self.form.addRow(self.s2)
        cloud_row = QHBoxLayout()
        self.cloud = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.cloud_label = QLabel(minimumWidth=QFontMetrics(QFont()).horizontalAdvance("100 %") + 4)
        self.cloud.valueChanged.connect(self._show_cloud)
        cloud_row.addWidget(self.cloud, 1)
        cloud_row.addWidget(self.cloud_label)
        self.form.addRow("Max cloud cover", cloud_row)
        self.tile_km = QSpinBox(minimum=1, maximum=100, suffix=" km")
        self.form.addRow("Tile size", self.tile_km)

    def _show_cloud(self, value: int) -> None:
        self.cloud_label.setText(f"{value} %")

    def _set_cloud(self, value: int) -> None:
        self.cloud.setValue(value)
        self._show_cloud(self.cloud.value())  # also when the value did not change (no signal)

    def bound_settings(self) -> List[Bound]:
        return [
            Bound(settings.START, lambda: self.start_date.date().toString(DATE_FORMAT),
                  lambda text: self.start_date.setDate(QDate.fromString(text, DATE_FORMAT))),
            Bound(settings.END, lambda: self.end_date.date().toString(DATE_FORMAT),
                  lambda text: self.end_date.setDate(QDate.fromString(text, DATE_FORMAT))),
            Bound(settings.WINDOW_MONTHS, self.window_months.value, self.window_months.setValue),
            Bound(settings.RECIPE, self.recipe.currentData,
                  lambda name: self.recipe.setCurrentIndex(max(0, self.recipe.findData(name)))),
            Bound(settings.S1, self.s1.isChecked, self.s1.setChecked),
            Bound(settings.S2, self.s2.isChecked, self.s2.setChecked),
            Bound(settings.CLOUD, self.cloud.value, self._set_cloud),
            Bound(settings.TILE_KM, self.tile_km.value, self.tile_km.setValue),
        ]  # fmt: skip

    def problem_fields(self) -> Dict[str, QWidget]:
        return {
            "start_date": self.start_date,
            "end_date": self.end_date,
            "window_months": self.window_months,
            "recipe": self.recipe,
            "max_cloud_cover": self.cloud,
            "sensors": self.s2,
            "tile_size": self.tile_km,
        }

    # --- what the plan is made of ------------------------------------------------------------------
    def dates(self) -> tuple:
        """(start, end) as ``YYYY-MM-DD``."""
        return self.start_date.date().toString(DATE_FORMAT), self.end_date.date().toString(DATE_FORMAT)

    def sensors(self) -> List[int]:
        return [sentinel for sentinel, box in ((1, self.s1), (2, self.s2)) if box.isChecked()]

    def collections(self) -> List[str]:
        return [COLLECTIONS[sentinel] for sentinel in self.sensors()]

    def request(self) -> PlanRequest:
        return PlanRequest(*self.dates(), self.sensors(), self.cloud.value(), self.window_months.value(),
                           recipe=self.recipe.currentData())  # fmt: skip

    def tile_size_m(self) -> int:
        return self.tile_km.value() * 1000
