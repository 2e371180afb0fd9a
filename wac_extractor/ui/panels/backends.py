"""The dock's "Backends and sign-in" section: backends with their parallel jobs, sign-in, device code, test.

Network work (sign-in, device-code polling, Test connection) runs in ``QgsTask``s (``sign_in_task``);
their results come back through Qt signals into slots here, on the UI thread. Settings keep URLs,
methods and auth-configuration ids, never a secret; tokens stay in openeo's refresh-token store.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import asdict
from typing import Callable, Dict, List, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt, pyqtSignal, pyqtSlot
from qgis.PyQt.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ...core.backends.connect import CDSE_URL, BackendReport, insecure_url_warning, normalize_url
from ...core.backends.signin import BackendLogin, DeviceCodePrompt, DeviceFlowUi
from ...core.jobs.backend_spec import BackendSpec
from ...core.recipes.process_graphs import BackendCapabilities, check_temporal_coverage
from ...definitions import settings
from ...qgis_glue.credentials import sign_in_for
from .backend_table import BackendEntry, BackendTable, ask_url
from .base import SectionPanel, shrinkable
from .device_code import RUN_PAUSED_TITLE, DeviceCodeBox
from .sign_in_method import METHODS, SignInMethodBox
from .sign_in_task import SignInTask, check_connection_work, sign_in_work, sign_out_work

__all__ = ["METHODS", "BackendEntry", "BackendPanel"]


class BackendPanel(SectionPanel):
    """Backends (several per run, each with its parallel jobs), sign-in per backend, Test connection."""

    code_ready = pyqtSignal(object)  # DeviceCodePrompt of a "Sign in" click, from its task's thread
    run_code_ready = pyqtSignal(object)  # DeviceCodePrompt of a running extraction that lost its sign-in

    def __init__(self, parent=None):
        super().__init__("Backends and sign-in", parent)
        self.entries: List[BackendEntry] = []
        self.reports: Dict[str, BackendReport] = {}
        self.signed_in: Dict[str, str] = {}
        self.task: Optional[SignInTask] = None
        self._cancel = threading.Event()
        self._build()
        self.code_ready.connect(self.show_code)
        self.run_code_ready.connect(self.show_run_code)
        self._run_waiting = False
        self.load_settings()

    # --- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = BackendTable(parallel_changed=self._save_and_notify)
        layout.addWidget(self.table)
        edit = QHBoxLayout()
        self.add_button = QPushButton("Add backend…", toolTip="Add the URL of another openEO backend")
        self.remove_button = QPushButton("Remove", toolTip="Remove the selected backend (CDSE stays)")
        edit.addWidget(self.add_button)
        edit.addWidget(self.remove_button)
        layout.addLayout(edit)

        self.method_box = SignInMethodBox()
        self.method, self.authcfg = self.method_box.method, self.method_box.authcfg
        self.authcfg_label = self.method_box.authcfg_label
        layout.addWidget(self.method_box)
        actions = QGridLayout()
        self.sign_in_button = QPushButton("Sign in")
        self.sign_out_button = QPushButton("Sign out", toolTip="Forget the stored sign-in of this backend")
        self.test_button = QPushButton("Test connection", toolTip="API version, collections, processes, dates")
        for number, button in enumerate((self.sign_in_button, self.sign_out_button, self.test_button)):
            shrinkable(button)
            actions.addWidget(button, number // 2, number % 2, 1, 2 if number == 2 else 1)
        layout.addLayout(actions)
        self.status = QLabel(
            "Not signed in", wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse
        )
        layout.addWidget(self.status)

        self.device_box = DeviceCodeBox()
        # the box's parts by the names the panel always had
        self.device_title, self.code_label = self.device_box.title, self.device_box.code_label
        self.link_label, self.countdown_label = self.device_box.link_label, self.device_box.countdown_label
        self.cancel_button = self.device_box.cancel_button
        layout.addWidget(self.device_box)
        self.form.addRow(body)
        self._connect()

    def _connect(self) -> None:
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

    # --- backends ------------------------------------------------------------------------------
    def bound_settings(self) -> List[settings.Bound]:
        return [settings.Bound(settings.BACKENDS, self._saved_entries, self._restore_entries)]

    def _saved_entries(self) -> str:
        return json.dumps([asdict(e) for e in self.entries])

    def _restore_entries(self, saved: str) -> None:
        try:
            entries = [BackendEntry(**e) for e in json.loads(saved)]
        except (TypeError, ValueError):
            entries = []
        if not any(e.url == CDSE_URL for e in entries):
            entries.insert(0, BackendEntry(CDSE_URL))
        self.set_entries(entries)

    def problem_fields(self) -> Dict[str, QWidget]:
        return {"backend": self.table}

    def set_entries(self, entries: List[BackendEntry]) -> None:
        self.entries = list(entries)
        self.table.show_entries(self.entries)
        self.table.selectRow(0)
        self._selection_changed()

    def add_backend(self, url: str, parallel: int = 2, method: str = "oidc", authcfg: str = "") -> BackendEntry:
        """Add (or select) a backend; raises ValueError for a URL that is not one."""
        url = normalize_url(url)
        existing = next((i for i, e in enumerate(self.entries) if e.url == url), None)
        if existing is None:
            self.set_entries(self.entries + [BackendEntry(url, parallel, True, method, authcfg)])
            existing = len(self.entries) - 1
        self.table.blockSignals(True)
        self.table.tick_only(existing)  # the user added it to use it: the others (CDSE too) are unticked
        self.table.blockSignals(False)
        self.table.selectRow(existing)
        self._save_and_notify()
        self._show_status(self.entries[existing])
        return self.entries[existing]

    def ask_backend(self) -> None:
        url = ask_url(self)
        if url:
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
        self.table.read_into(self.entries)

    def _save_and_notify(self) -> None:
        self._sync_from_table()
        self.save_settings()
        self.changed.emit()

    def _selection_changed(self) -> None:
        entry = self.selected()
        self.method_box.show_method(entry.method, entry.authcfg)
        self._show_method(entry)
        self._show_status(entry)

    def _method_changed(self) -> None:
        entry = self.selected()
        entry.method = self.method.currentData()
        entry.authcfg = self.authcfg.configId()
        self._show_method(entry)
        self._show_status(entry)  # the hint of the method chosen, not of the one before
        self._save_and_notify()

    def _show_method(self, entry: BackendEntry) -> None:
        self.method_box.show_credentials(entry.method)
        self.sign_out_button.setEnabled(entry.method == "oidc")

    def _show_status(self, entry: BackendEntry) -> None:
        lines = []
        if entry.url in self.signed_in:
            lines.append(f"Signed in to {entry.label} as {self.signed_in[entry.url]}")
        else:
            if entry.method != "none":
                lines.append(f"Not signed in to {entry.label} yet.")
            lines.append(self.method_box.hint(entry.method, entry.authcfg))
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
            work = functools.partial(sign_out_work, entry.url)
        else:
            ui = DeviceFlowUi(show=self.code_ready.emit, cancelled=self._cancel.is_set)
            try:
                sign_in = sign_in_for(entry.method, entry.authcfg, device_ui=ui if action == "sign in" else None)
            except ValueError as exc:
                self.status.setText(str(exc))
                return
            work = functools.partial(sign_in_work if action == "sign in" else check_connection_work,
                                     BackendLogin(entry.url, sign_in))  # fmt: skip
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
        self.device_box.show_code(prompt, RUN_PAUSED_TITLE)
        self._run_waiting = True

    def run_signed_in(self) -> None:
        """The run carries on (progress arrived): a code shown for it is no longer needed."""
        if self._run_waiting:
            self._run_waiting = False
            self.device_box.hide_code()

    @pyqtSlot(object)
    def show_code(self, prompt: DeviceCodePrompt) -> None:
        self._run_waiting = False
        self.device_box.show_code(prompt)

    def cancel_sign_in(self) -> None:
        self._cancel.set()
        self.device_box.hide_code()
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
        self.device_box.hide_code()
        self.sign_in_button.setEnabled(True)
        self.test_button.setEnabled(True)
        self._show_status(self.selected())
        self._show_method(self.selected())
