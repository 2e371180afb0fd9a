"""Sign in, Test connection and Sign out of a backend, off the UI thread, as ``QgsTask``s.

Results come back through the task's Qt signals into the backends panel's slots, on the UI thread.
"""

from __future__ import annotations

import threading
from typing import Callable

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ...core.backends.connect import check_backend
from ...core.backends.signin import (
    BackendLogin,
    SignInRequiredError,
    close_connection,
    open_connection,
    sign_out,
    signed_in_as,
)


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


def sign_in_work(login: BackendLogin) -> tuple:
    connection = login()
    try:
        return (signed_in_as(connection) if login.sign_in.method != "none" else ""), None, ""
    finally:
        close_connection(connection)


def check_connection_work(login: BackendLogin) -> tuple:
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


def sign_out_work(url: str) -> tuple:
    return "", None, f"Signed out: {sign_out(url)} stored sign-in(s) forgotten."
