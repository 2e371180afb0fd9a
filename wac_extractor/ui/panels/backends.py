"""The dock's "Backends and sign-in" section: backends with their parallel jobs, sign-in, device code, test.

Network work (sign-in, device-code polling, Test connection) runs in ``QgsTask``s; their results
come back through Qt signals into slots here, on the UI thread. Settings keep URLs, methods and
auth-configuration ids, never a secret; tokens stay in openeo's refresh-token store.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

from qgis.core import QgsApplication, QgsSettings, QgsTask
from qgis.gui import QgsAuthConfigSelect
from qgis.PyQt.QtCore import Qt, QTimer, QUrl, pyqtSignal, pyqtSlot
from qgis.PyQt.QtGui import QDesktopServices, QFont
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.backends.connect import CDSE_URL, BackendReport, check_backend, insecure_url_warning, normalize_url
from ...core.backends.signin import (
    SECRET_METHODS,
    BackendLogin,
    DeviceCodePrompt,
    DeviceFlowUi,
    SignInRequiredError,
    close_connection,
    open_connection,
    sign_out,
    signed_in_as,
)
from ...core.jobs.backend_spec import BackendSpec
from ...core.recipes.process_graphs import BackendCapabilities, check_temporal_coverage
from ...qgis_glue.credentials import sign_in_for

SETTINGS_KEY = "wac_extractor/backends"
CDSE_LABEL = "Copernicus Data Space Ecosystem"
METHODS = {"oidc": "OpenID Connect (browser)", "client_credentials": "Client credentials (service account)",
           "basic": "Basic (user/password)", "none": "None"}  # fmt: skip


@dataclass
class BackendEntry:
    """One row of the backends table, as saved in settings (no secrets: ``authcfg`` is an id)."""

    url: str
    parallel: int = 2
    enabled: bool = True
    method: str = "oidc"
    authcfg: str = ""

    @property
    def label(self) -> str:
        return CDSE_LABEL if self.url == CDSE_URL else self.url


class SignInTask(QgsTask):
    """Sign in, test or sign out off the UI thread (a device code reaches the panel through its own signal)."""

    done = pyqtSignal(str, object, str)  # who is signed in ("" if nobody), BackendReport or None, a note
    failed = pyqtSignal(str)

    def __init__(self, description: str, work: Callable[[], tuple], cancel: threading.Event):
        super().__init__(f"WAC Extractor: {description}", QgsTask.Flag.CanCancel)
        self.work, self.cancel_event = work, cancel

    def run(self) -> bool:
        try:
            self.done.emit(*self.work())
            return True
        except Exception as exc:  # shown at the panel; nothing is stored on failure
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return False

    def cancel(self) -> None:
        self.cancel_event.set()
        super().cancel()


def _sign_in(login: BackendLogin) -> tuple:
    connection = login()
    try:
        return (signed_in_as(connection) if login.sign_in.method != "none" else ""), None, ""
    finally:
        close_connection(connection)


def _test(login: BackendLogin) -> tuple:
    """Uses a stored sign-in if there is one; never prompts."""
    connection = open_connection(login.url, default_timeout=30, auto_validate=False)
    try:
        user = ""
        if login.sign_in.method != "none":
            try:
                user = signed_in_as(login.sign_in_again(connection))
            except SignInRequiredError:
                pass
        return user, check_backend(connection, user=user), ""
    finally:
        close_connection(connection)


def _sign_out(url: str) -> tuple:
    return "", None, f"Signed out: {sign_out(url)} stored sign-in(s) forgotten."


class BackendPanel(QWidget):
    """Backends (several per run, each with its parallel jobs), sign-in per backend, Test connection."""

    changed = pyqtSignal()  # backends, methods or reports changed: the dock re-validates
    code_ready = pyqtSignal(object)  # DeviceCodePrompt of a "Sign in" click, from its task's thread
    run_code_ready = pyqtSignal(object)  # DeviceCodePrompt of a running extraction that lost its sign-in

    def __init__(self, parent=None):
        super().__init__(parent)
        self.entries: List[BackendEntry] = []
        self.reports: Dict[str, BackendReport] = {}
        self.signed_in: Dict[str, str] = {}
        self.task: Optional[SignInTask] = None
        self._cancel = threading.Event()
        self._deadline = 0.0
        self._build()
        self.code_ready.connect(self.show_code)
        self.run_code_ready.connect(self.show_run_code)
        self._run_waiting = False
        self.countdown = QTimer(self, interval=1000, timeout=self._tick)
        self.load_settings()

    # --- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Backend (tick to use)", "Parallel"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setMaximumHeight(96)
        self.table.setToolTip("Ticked backends share the jobs of a run, each with its own number of parallel jobs")
        layout.addWidget(self.table)
        edit = QHBoxLayout()
        self.add_button = QPushButton("Add backend…", toolTip="Add the URL of another openEO backend")
        self.remove_button = QPushButton("Remove", toolTip="Remove the selected backend (CDSE stays)")
        edit.addWidget(self.add_button)
        edit.addWidget(self.remove_button)
        layout.addLayout(edit)

        grid = QGridLayout()
        self.method = QComboBox()
        for key, label in METHODS.items():
            self.method.addItem(label, key)
        self.method.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        grid.addWidget(QLabel("Sign in with"), 0, 0)
        grid.addWidget(self.method, 0, 1)
        self.authcfg = QgsAuthConfigSelect(self)
        self.authcfg.setToolTip("User/password or client id/secret, kept in QGIS's encrypted authentication database")
        self.authcfg_label = QLabel("Credentials")
        grid.addWidget(self.authcfg_label, 1, 0)
        grid.addWidget(self.authcfg, 1, 1)
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)
        actions = QGridLayout()
        self.sign_in_button = QPushButton("Sign in")
        self.sign_out_button = QPushButton("Sign out", toolTip="Forget the stored sign-in of this backend")
        self.test_button = QPushButton("Test connection", toolTip="API version, collections, processes, dates")
        for number, button in enumerate((self.sign_in_button, self.sign_out_button, self.test_button)):
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            actions.addWidget(button, number // 2, number % 2, 1, 2 if number == 2 else 1)
        layout.addLayout(actions)
        self.status = QLabel(
            "Not signed in", wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse
        )
        layout.addWidget(self.status)

        self.device_box = QFrame(frameShape=QFrame.Shape.StyledPanel)
        self.device_box.setStyleSheet("QFrame { background: #eef4fb; border-radius: 4px; }")
        box = QVBoxLayout(self.device_box)
        self.device_title = QLabel("Open the link below, sign in and enter this code:", wordWrap=True)
        box.addWidget(self.device_title)
        self.code_label = QLabel(
            textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse, alignment=Qt.AlignmentFlag.AlignCenter
        )
        font = QFont()
        font.setPointSize(20)
        font.setBold(True)
        font.setFamily("monospace")
        self.code_label.setFont(font)
        box.addWidget(self.code_label)
        self.link_label = QLabel(wordWrap=True, openExternalLinks=False, textFormat=Qt.TextFormat.RichText)
        self.link_label.linkActivated.connect(lambda url: QDesktopServices.openUrl(QUrl(url)))
        box.addWidget(self.link_label)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open link", toolTip="Open the sign-in page in your browser")
        self.copy_button = QPushButton("Copy code")
        self.cancel_button = QPushButton("Cancel")
        for button in (self.open_button, self.copy_button, self.cancel_button):
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            row.addWidget(button)
        box.addLayout(row)
        self.countdown_label = QLabel()
        box.addWidget(self.countdown_label)
        self.device_box.hide()
        layout.addWidget(self.device_box)

        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.itemChanged.connect(lambda _item: self._save_and_notify())
        self.add_button.clicked.connect(self.ask_backend)
        self.remove_button.clicked.connect(self.remove_selected)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.authcfg.selectedConfigIdChanged.connect(self._method_changed)
        self.sign_in_button.clicked.connect(lambda: self.start("sign in"))
        self.test_button.clicked.connect(lambda: self.start("test"))
        self.sign_out_button.clicked.connect(lambda: self.start("sign out"))
        self.cancel_button.clicked.connect(self.cancel_sign_in)
        self.open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl(self._prompt_link)))
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.code_label.text()))
        self._prompt_link = ""

    # --- backends ------------------------------------------------------------------------------
    def load_settings(self) -> None:
        try:
            saved = json.loads(QgsSettings().value(SETTINGS_KEY, "[]"))
            entries = [BackendEntry(**e) for e in saved]
        except (TypeError, ValueError):
            entries = []
        if not any(e.url == CDSE_URL for e in entries):
            entries.insert(0, BackendEntry(CDSE_URL))
        self.set_entries(entries)

    def save_settings(self) -> None:
        QgsSettings().setValue(SETTINGS_KEY, json.dumps([asdict(e) for e in self.entries]))

    def set_entries(self, entries: List[BackendEntry]) -> None:
        self.entries = list(entries)
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        for entry in self.entries:
            row = self.table.rowCount()
            self.table.insertRow(row)
            item = QTableWidgetItem(entry.label)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked)
            item.setToolTip(entry.url)
            self.table.setItem(row, 0, item)
            spin = QSpinBox(minimum=1, maximum=50, value=entry.parallel)
            spin.setToolTip("Parallel jobs on this backend (CDSE: 2 for standard users)")
            spin.valueChanged.connect(self._save_and_notify)
            self.table.setCellWidget(row, 1, spin)
        self.table.blockSignals(False)
        self.table.selectRow(0)
        self._selection_changed()

    def add_backend(self, url: str, parallel: int = 2, method: str = "oidc", authcfg: str = "") -> BackendEntry:
        """Add (or select) a backend; raises ValueError for a URL that is not one."""
        url = normalize_url(url)
        existing = next((i for i, e in enumerate(self.entries) if e.url == url), None)
        if existing is None:
            self.set_entries(self.entries + [BackendEntry(url, parallel, True, method, authcfg)])
            existing = len(self.entries) - 1
        self.table.selectRow(existing)
        self._save_and_notify()
        return self.entries[existing]

    def ask_backend(self) -> None:
        url, ok = QInputDialog.getText(self, "Add openEO backend", "Backend URL (https://…):")
        if ok and url.strip():
            try:
                self.add_backend(url)
            except ValueError as exc:
                self.status.setText(str(exc))

    def remove_selected(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.entries) and self.entries[row].url != CDSE_URL:
            self.set_entries(self.entries[:row] + self.entries[row + 1 :])
            self._save_and_notify()

    def selected(self) -> BackendEntry:
        row = max(0, self.table.currentRow())
        return self.entries[min(row, len(self.entries) - 1)]

    def _sync_from_table(self) -> None:
        for row, entry in enumerate(self.entries):
            entry.enabled = self.table.item(row, 0).checkState() == Qt.CheckState.Checked
            entry.parallel = self.table.cellWidget(row, 1).value()

    def _save_and_notify(self) -> None:
        self._sync_from_table()
        self.save_settings()
        self.changed.emit()

    def _selection_changed(self) -> None:
        entry = self.selected()
        self.method.blockSignals(True)
        self.method.setCurrentIndex(max(0, self.method.findData(entry.method)))
        self.method.blockSignals(False)
        self.authcfg.setConfigId(entry.authcfg)
        self._show_method(entry)
        self._show_status(entry)

    def _method_changed(self) -> None:
        entry = self.selected()
        entry.method = self.method.currentData()
        entry.authcfg = self.authcfg.configId()
        self._show_method(entry)
        self._save_and_notify()

    def _show_method(self, entry: BackendEntry) -> None:
        needs_secret = entry.method in SECRET_METHODS
        self.authcfg.setVisible(needs_secret)
        self.authcfg_label.setVisible(needs_secret)
        self.sign_out_button.setEnabled(entry.method == "oidc")

    def _show_status(self, entry: BackendEntry) -> None:
        lines = []
        if entry.url in self.signed_in:
            lines.append(f"Signed in to {entry.label} as {self.signed_in[entry.url]}")
        elif entry.method != "none":
            lines.append(f"Not signed in to {entry.label} yet" + (" (a stored sign-in is used if there is one)"
                                                                  if entry.method == "oidc" else ""))  # fmt: skip
        if insecure_url_warning(entry.url):
            lines.append("Warning: " + insecure_url_warning(entry.url) + " Use https:// if the backend offers it.")
        report = self.reports.get(entry.url)
        if report is not None:
            lines.extend(report.lines() if report.ok else ["Cannot run WAC jobs:"] + report.lines())
        self.status.setText("\n".join(lines))

    # --- what a run needs --------------------------------------------------------------------------
    def enabled_entries(self) -> List[BackendEntry]:
        self._sync_from_table()
        return [e for e in self.entries if e.enabled]

    def backends_for_run(self, cancelled: Callable[[], bool]):
        """(BackendSpec, BackendLogin) pairs of the ticked backends; raises ValueError with what to change.

        A run that needs a device-code sign-in shows it here; Cancel here or ``cancelled()`` ends it.
        """
        entries = self.enabled_entries()
        if not entries:
            raise ValueError("backend: tick at least one backend in the list.")
        ui = DeviceFlowUi(show=self.run_code_ready.emit, cancelled=lambda: cancelled() or self._cancel.is_set())
        return [
            (BackendSpec(url=e.url, parallel_jobs=e.parallel), BackendLogin(e.url, sign_in_for(e.method, e.authcfg,
                                                                                            device_ui=ui)))
            for e in entries
        ]  # fmt: skip

    def check_dates(self, start: str, end: str, collections: List[str]) -> None:
        """Raise ValueError (naming the date field) when a tested backend lacks these dates."""
        for entry in self.enabled_entries():
            report = self.reports.get(entry.url)
            if report is None:
                continue
            capabilities = BackendCapabilities(temporal_extents=tuple(report.collections.items()))
            for collection_id in collections:
                try:
                    check_temporal_coverage(collection_id, [start, end], capabilities)
                except ValueError as exc:
                    raise ValueError(f"start_date: {exc} ({entry.label})") from None

    # --- sign-in and test ------------------------------------------------------------------------
    def start(self, action: str) -> None:
        """``action``: "sign in", "test" or "sign out" the selected backend, in a task."""
        if self.task is not None:
            return
        entry = self.selected()
        self._cancel = threading.Event()
        if action == "sign out":
            work = functools.partial(_sign_out, entry.url)
        else:
            ui = DeviceFlowUi(show=self.code_ready.emit, cancelled=self._cancel.is_set)
            try:
                sign_in = sign_in_for(entry.method, entry.authcfg, device_ui=ui if action == "sign in" else None)
            except ValueError as exc:
                self.status.setText(str(exc))
                return
            work = functools.partial(_sign_in if action == "sign in" else _test, BackendLogin(entry.url, sign_in))
        if action == "sign out":
            self.signed_in.pop(entry.url, None)
        self.task = SignInTask(f"{action} {entry.label}", work, self._cancel)
        self.task.done.connect(self.on_done)
        self.task.failed.connect(self.on_failed)
        self._task_url = entry.url
        doing = {"sign in": "Signing in to", "test": "Testing", "sign out": "Signing out of"}[action]
        self.status.setText(f"{doing} {entry.label}…")
        for button in (self.sign_in_button, self.test_button, self.sign_out_button):
            button.setEnabled(False)
        QgsApplication.taskManager().addTask(self.task)

    @pyqtSlot(object)
    def show_run_code(self, prompt: DeviceCodePrompt) -> None:
        self.show_code(prompt)
        self._run_waiting = True
        self.device_title.setText("The run is paused until you sign in: open the link, sign in, enter this code:")

    def run_signed_in(self) -> None:
        """The run carries on (progress arrived): a code shown for it is no longer needed."""
        if self._run_waiting:
            self._run_waiting = False
            self._hide_code()

    @pyqtSlot(object)
    def show_code(self, prompt: DeviceCodePrompt) -> None:
        self._run_waiting = False
        self.device_title.setText("Open the link below, sign in and enter this code:")
        self._prompt_link = prompt.link
        self.code_label.setText(prompt.user_code)
        self.link_label.setText(f'<a href="{prompt.link}">{prompt.verification_uri}</a>')
        self.link_label.setToolTip(prompt.link)
        self._deadline = time.monotonic() + prompt.expires_in
        self._tick()
        self.countdown.start()
        self.device_box.show()

    def _tick(self) -> None:
        left = max(0, int(self._deadline - time.monotonic()))
        self.countdown_label.setText(f"Waiting for your approval: {left // 60}:{left % 60:02d} left")
        if left == 0:
            self.countdown.stop()

    def _hide_code(self) -> None:
        self.countdown.stop()
        self.device_box.hide()

    def cancel_sign_in(self) -> None:
        self._cancel.set()
        self._hide_code()
        self.status.setText("Sign-in cancelled.")

    @pyqtSlot(str, object, str)
    def on_done(self, user: str, report, note: str) -> None:
        url = self._task_url
        if user:
            self.signed_in[url] = user
        if report is not None:
            self.reports[url] = report
        self._task_finished()
        if note:
            self.status.setText(f"{self.status.text()}\n{note}".strip())
        self.changed.emit()

    @pyqtSlot(str)
    def on_failed(self, message: str) -> None:
        self._task_finished()
        self.status.setText("Sign-in cancelled." if self._cancel.is_set() else f"Failed: {message}")

    def _task_finished(self) -> None:
        self.task = None
        self._hide_code()
        self.sign_in_button.setEnabled(True)
        self.test_button.setEnabled(True)
        self._show_status(self.selected())
        self._show_method(self.selected())
