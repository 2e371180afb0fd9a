"""The sign-in method of the selected backend: the method, the QGIS credentials it needs, and its hint.

Everything shown follows the method chosen (issue 24: the OIDC hint stayed after choosing Basic).
"""

from __future__ import annotations

from qgis.gui import QgsAuthConfigSelect
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QGridLayout, QLabel, QSizePolicy, QWidget

from ...core.backends.signin import SECRET_METHODS
from .base import shrinkable

METHODS = {"oidc": "OpenID Connect", "client_credentials": "Client credentials",
           "basic": "Basic (user/password)", "none": "None"}  # fmt: skip
METHOD_TIPS = {"oidc": "Your account, approved in a browser with a code (CDSE)",
               "client_credentials": "A service account's client id and secret (OIDC client credentials)",
               "basic": "A user name and password", "none": "A backend open to anyone"}  # fmt: skip

# The credentials each secret method takes from a QGIS "Basic" authentication configuration.
CREDENTIALS_LABELS = {"basic": "User name and password", "client_credentials": "Client id and secret"}
CREDENTIALS_TIPS = {
    "basic": "A QGIS Basic configuration with your user name and password (+ adds one), kept in QGIS's encrypted "
    "authentication database",
    "client_credentials": "A QGIS Basic configuration with the service account's client id as user name and its "
    "secret as password (+ adds one), kept in QGIS's encrypted authentication database",
}
# What "Sign in" does with each method, said under the buttons while nobody is signed in.
HINTS = {
    "oidc": "Sign in opens a page in your browser and shows a code to enter there (a stored sign-in is used "
    "if there is one).",
    "basic": "Sign in sends the user name and password of the configuration above.",
    "client_credentials": "Sign in sends the client id and secret of the configuration above.",
    "none": "No sign-in: for a backend open to anyone.",
}
NO_CREDENTIALS = "Choose a configuration above, or add one with +."

# QGIS lists the authentication methods that support a data provider; "proxy" supports only Basic, the one
# method the plugin reads: the editor opens on Basic (was "API Header") and the list offers Basic ones only.
BASIC_ONLY_PROVIDER = "proxy"


class SignInMethodBox(QWidget):
    """*Sign in with* and, for the methods that need a secret, the QGIS authentication configuration."""

    def __init__(self, parent=None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.method = QComboBox()
        for key, label in METHODS.items():
            self.method.addItem(label, key)
            self.method.setItemData(self.method.count() - 1, METHOD_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        shrinkable(self.method)
        # Each under its label, over the whole width: beside them, at 300 px, the method's name was cut
        # ("Client credentials (serv") and the configuration picker needed 345 px (issue 24).
        grid.addWidget(QLabel("Sign in with"), 0, 0)
        grid.addWidget(self.method, 1, 0)
        self.authcfg = QgsAuthConfigSelect(self, BASIC_ONLY_PROVIDER)
        self.authcfg_label = QLabel("Credentials")
        grid.addWidget(self.authcfg_label, 2, 0)
        grid.addWidget(self.authcfg, 3, 0)
        # Its list takes the width its buttons leave, down to 6 characters: ignoring its size (shrinkable), QGIS's
        # grid squeezed it under the edit and remove buttons (seen in QGIS Desktop).
        for combo in self.authcfg.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        for inner in self.authcfg.findChildren(QGridLayout):
            inner.setColumnStretch(0, 1)

    def show_method(self, method: str, authcfg: str) -> None:
        """Show ``method`` (without emitting a change) and the credentials it needs."""
        self.method.blockSignals(True)
        self.method.setCurrentIndex(max(0, self.method.findData(method)))
        self.method.blockSignals(False)
        self.authcfg.setConfigId(authcfg)
        self.show_credentials(method)

    def show_credentials(self, method: str) -> None:
        """The credentials picker, labelled for ``method``, or hidden when it needs none."""
        needs_secret = method in SECRET_METHODS
        self.authcfg.setVisible(needs_secret)
        self.authcfg_label.setVisible(needs_secret)
        if needs_secret:
            self.authcfg_label.setText(CREDENTIALS_LABELS[method])
            self.authcfg.setToolTip(CREDENTIALS_TIPS[method])

    @staticmethod
    def hint(method: str, authcfg: str) -> str:
        """What *Sign in* will do with this method, or what is missing for it."""
        if method in SECRET_METHODS and not authcfg:
            return NO_CREDENTIALS
        return HINTS.get(method, "")
