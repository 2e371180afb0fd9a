"""The device-code box of the sign-in: the verification link, the user code large and copyable, a countdown."""

from __future__ import annotations

import time

from qgis.PyQt.QtCore import Qt, QTimer, QUrl
from qgis.PyQt.QtGui import QDesktopServices, QFont
from qgis.PyQt.QtWidgets import QApplication, QFrame, QGridLayout, QLabel, QPushButton, QVBoxLayout

from ...core.backends.signin import DeviceCodePrompt
from .base import shrinkable

SIGN_IN_TITLE = "Open the link below, sign in and enter this code:"
RUN_PAUSED_TITLE = "The run is paused until you sign in: open the link, sign in, enter this code:"


class DeviceCodeBox(QFrame):
    """Hidden until a code is shown; *Cancel* (``cancel_button``) is the sign-in panel's to connect."""

    def __init__(self, parent=None):
        super().__init__(parent, frameShape=QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame { background: #eef4fb; border-radius: 4px; }")
        box = QVBoxLayout(self)
        self.title = QLabel(SIGN_IN_TITLE, wordWrap=True)
        box.addWidget(self.title)
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
        # Two buttons a row, Cancel under them, and a wrapping countdown: three in a row and the countdown on one
        # line cut "Copy code" and needed 340 px (12 pt), past the dock's 300 px.
        buttons = QGridLayout()
        self.open_button = QPushButton("Open link", toolTip="Open the sign-in page in your browser")
        self.copy_button = QPushButton("Copy code")
        self.cancel_button = QPushButton("Cancel")
        for number, button in enumerate((self.open_button, self.copy_button, self.cancel_button)):
            shrinkable(button)
            buttons.addWidget(button, number // 2, number % 2, 1, 2 if number == 2 else 1)
        box.addLayout(buttons)
        self.countdown_label = QLabel(wordWrap=True)
        box.addWidget(self.countdown_label)
        self.hide()
        self._link = ""
        self._deadline = 0.0
        self.countdown = QTimer(self, interval=1000, timeout=self._tick)
        self.open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl(self._link)))
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.code_label.text()))

    def show_code(self, prompt: DeviceCodePrompt, title: str = SIGN_IN_TITLE) -> None:
        self.title.setText(title)
        self._link = prompt.link
        self.code_label.setText(prompt.user_code)
        self.link_label.setText(f'<a href="{prompt.link}">{prompt.verification_uri}</a>')
        self.link_label.setToolTip(prompt.link)
        self._deadline = time.monotonic() + prompt.expires_in
        self._tick()
        self.countdown.start()
        self.show()

    def _tick(self) -> None:
        left = max(0, int(self._deadline - time.monotonic()))
        self.countdown_label.setText(f"Waiting for your approval: {left // 60}:{left % 60:02d} left")
        if left == 0:
            self.countdown.stop()

    def hide_code(self) -> None:
        self.countdown.stop()
        self.hide()
