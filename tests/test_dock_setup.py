"""Setting up a backend in the dock (issue 24, item 8): the one added is ticked, Basic credentials, titles, hints.

And the dock's promises kept in every sign-in mode: nothing clipped at 300 px, no value moved by a wheel.
"""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QPoint, Qt, QTimer
from qgis.PyQt.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QDialog,
    QInputDialog,
    QLabel,
    QToolButton,
    QWidget,
)

from wac_extractor.core.backends.connect import CDSE_URL
from wac_extractor.core.backends.signin import DeviceCodePrompt
from wac_extractor.qgis_glue.credentials import save_credentials
from wac_extractor.ui.panels.backend_table import ADD_TITLE, title_width
from wac_extractor.ui.panels.sign_in_method import HINTS, METHODS, NO_CREDENTIALS

from .conftest import unlock_auth_database
from .test_dock import fresh_dock
from .test_dock_usability import wheel_down

LOCAL = "http://127.0.0.1:8765/openeo"


@pytest.fixture
def dock(qgis_iface, qgis_canvas, qtbot):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    dock.resize(300, 1000)
    dock.show()
    qtbot.waitExposed(dock)
    yield dock
    QgsApplication.taskManager().cancelAll()
    dock.close()


def in_modal_dialog(qtbot, kind: str, act) -> None:
    """Call ``act(dialog)`` on the modal dialog of C++ class ``kind`` once it is open (it blocks in exec)."""

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is not None and dialog.metaObject().className() == kind and dialog.isVisible():
            act(dialog)
        else:
            QTimer.singleShot(50, look)

    QTimer.singleShot(50, look)


def test_a_backend_added_in_its_dialog_is_the_ticked_one_and_the_dialog_title_is_whole(dock, qtbot):
    panel = dock.backends
    assert [e.enabled for e in panel.entries] == [True]  # CDSE, ticked by default
    seen = {}

    def type_url(dialog: QInputDialog) -> None:
        seen.update(title=dialog.windowTitle(), width=dialog.width(), label=dialog.labelText())
        dialog.setTextValue(LOCAL)
        dialog.accept()

    in_modal_dialog(qtbot, "QInputDialog", type_url)
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert seen["title"] == ADD_TITLE
    assert seen["width"] >= title_width(ADD_TITLE), seen  # a title bar with its buttons shows it whole
    assert [(e.url, e.enabled) for e in panel.entries] == [(CDSE_URL, False), (LOCAL, True)]
    assert panel.table.item(0, 0).checkState() == Qt.CheckState.Unchecked
    assert panel.table.currentRow() == 1 and panel.selected().url == LOCAL
    assert [e.url for e in panel.enabled_entries()] == [LOCAL]  # what a run uses
    assert '"enabled": false' in panel._saved_entries()  # and what QGIS remembers


def test_the_auth_editor_opens_on_basic_and_lists_basic_configurations_only(dock, qtbot):
    unlock_auth_database()
    panel = dock.backends
    panel.method.setCurrentIndex(panel.method.findData("basic"))
    add = next(b for b in panel.authcfg.findChildren(QToolButton) if b.objectName() == "btnConfigAdd")
    assert add.isVisible()
    seen = {}

    def look(editor: QDialog) -> None:
        methods = editor.findChild(QComboBox, "cmbAuthMethods")
        seen.update(current=methods.currentData(), methods=[methods.itemData(i) for i in range(methods.count())],
                    title=editor.windowTitle(), width=editor.width())  # fmt: skip
        editor.reject()

    in_modal_dialog(qtbot, "QgsAuthConfigEdit", look)
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    assert seen["current"] == "Basic" and seen["methods"] == ["Basic"], seen
    assert seen["width"] >= title_width(seen["title"]), seen
    # an API-header configuration, which the plugin cannot use, is not offered
    basic = save_credentials("WAC basic", "demo", "demo", LOCAL)
    panel.authcfg.setConfigId(basic)
    assert panel.authcfg.configId() == basic


@pytest.mark.parametrize("method", list(METHODS))
def test_the_hint_and_credentials_follow_the_sign_in_method(dock, method):
    panel = dock.backends
    panel.method.setCurrentIndex(panel.method.findData("oidc"))
    panel.method.setCurrentIndex(panel.method.findData(method))  # the user's choice
    text = panel.status.text()
    hint = NO_CREDENTIALS if method in ("basic", "client_credentials") else HINTS[method]
    assert hint in text, text
    others = [h for key, h in HINTS.items() if key != method]
    assert not any(other in text for other in others), text  # no hint of another method stays
    assert panel.authcfg.isVisible() == (method in ("basic", "client_credentials"))
    if panel.authcfg.isVisible():
        assert panel.authcfg_label.text() == {"basic": "User name and password",
                                              "client_credentials": "Client id and secret"}[method]  # fmt: skip
        unlock_auth_database()
        panel.authcfg.setConfigId(save_credentials("WAC hint", "demo", "demo", LOCAL))
        assert HINTS[method] in panel.status.text() and NO_CREDENTIALS not in panel.status.text()
    assert panel.sign_out_button.isEnabled() == (method == "oidc")


def clipped(root: QWidget, frame: QWidget) -> list:
    """Visible widgets under ``root`` that reach past ``frame``'s right edge, are narrower than their text, or
    overlap a visible sibling (a squeezed list under its buttons)."""
    found = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.width() == 0:
            continue
        siblings = [w for w in widget.parentWidget().children() if isinstance(w, QWidget) and w is not widget]
        for other in siblings:
            if other.isVisible() and not other.isWindow() and other.geometry().intersects(widget.geometry()):
                found.append((type(widget).__name__, widget.objectName(), "overlaps", other.objectName()))
        right = widget.mapTo(frame, QPoint(widget.width(), 0)).x()
        if right > frame.width():
            found.append((type(widget).__name__, widget.objectName(), "past the edge", right))
        texty = isinstance(widget, QAbstractButton) or (isinstance(widget, QLabel) and not widget.wordWrap())
        if texty and widget.text() and widget.sizeHint().width() > widget.width():
            found.append((type(widget).__name__, widget.text()[:30], widget.sizeHint().width(), widget.width()))
    return found


@pytest.mark.parametrize("mode", [*METHODS, "oidc with a code"])
def test_nothing_is_clipped_at_300_px_in_any_sign_in_mode(dock, qtbot, mode):
    unlock_auth_database()
    panel = dock.backends
    panel.add_backend("https://openeo.example.org/openeo/1.2")
    method = mode.split()[0]
    panel.method.setCurrentIndex(panel.method.findData(method))
    if method in ("basic", "client_credentials"):
        panel.authcfg.setConfigId(save_credentials("A rather long configuration name", "demo", "demo", LOCAL))
    if mode == "oidc with a code":
        panel.show_code(DeviceCodePrompt("https://openeo.example.org/device", "ABCD-EFGH",
                                         "https://openeo.example.org/device?user_code=ABCD-EFGH", 600))  # fmt: skip
    QApplication.processEvents()
    assert dock.width() == 300
    viewport = dock.scroll.viewport()
    # The whole form fits (one wide section widens and clips them all), and in the backends panel nothing reaches
    # past the viewport's edge or is narrower than its text.
    assert dock.scroll.widget().minimumSizeHint().width() <= viewport.width()
    assert clipped(panel, viewport) == []
    assert panel.method.sizeHint().width() <= panel.method.width()  # the longest method's name is whole


def test_no_wheel_over_an_unfocused_backend_field_changes_it(dock, qtbot):
    panel = dock.backends
    panel.add_backend(LOCAL)  # its row's parallel jobs: a spin box made after the dock was built
    dock.resize(300, 400)  # the dock scrolls
    dock.scroll.ensureWidgetVisible(panel.table)
    QApplication.processEvents()
    spin = panel.table.cellWidget(1, 1)
    before = (spin.value(), panel.method.currentIndex())
    for field in (spin, panel.method):
        wheel_down(field)
    assert (spin.value(), panel.method.currentIndex()) == before
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    wheel_down(spin)  # clicked into, the field takes the wheel as usual
    assert spin.value() != before[0]
