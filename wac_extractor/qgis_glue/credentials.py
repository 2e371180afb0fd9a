"""Secrets from QGIS's authentication database (``QgsAuthManager``): basic auth and client credentials.

A "Basic" auth configuration holds a user name and password, or a client id and client secret
(service accounts). The database is encrypted with the user's master password; the plugin keeps
only the configuration's id (in settings), never the secret.
"""

from __future__ import annotations

from typing import Tuple

from qgis.core import QgsApplication, QgsAuthMethodConfig

from ..core.backends.signin import SECRET_METHODS, SignIn

METHOD = "Basic"


class CredentialsError(ValueError):
    """The chosen authentication configuration cannot be used; the message says what to change."""


def load_credentials(authcfg: str) -> Tuple[str, str]:
    """(user name or client id, password or client secret) of an auth configuration."""
    if not authcfg:
        raise CredentialsError("credentials: choose (or add) an authentication configuration.")
    manager = QgsApplication.authManager()
    if manager.isDisabled():
        raise CredentialsError(f"credentials: QGIS's authentication system is disabled: {manager.disabledMessage()}")
    config = QgsAuthMethodConfig()
    if not manager.loadAuthenticationConfig(authcfg, config, True) or not config.isValid(True):
        raise CredentialsError(
            f"credentials: authentication configuration {authcfg!r} cannot be read; choose another one, "
            "or unlock the authentication database with its master password."
        )
    if config.method() != METHOD:
        raise CredentialsError(f"credentials: {config.name()!r} is a {config.method()} configuration; use a Basic one.")
    username, secret = config.config("username"), config.config("password")
    if not username or not secret:
        raise CredentialsError(f"credentials: {config.name()!r} has no user name or no password; edit it.")
    return username, secret


def save_credentials(name: str, username: str, secret: str, url: str = "") -> str:
    """Store a new Basic configuration; returns its id (what settings may keep)."""
    config = QgsAuthMethodConfig(METHOD)
    config.setName(name)
    config.setUri(url)
    config.setConfig("username", username)
    config.setConfig("password", secret)
    if not QgsApplication.authManager().storeAuthenticationConfig(config):
        raise CredentialsError(
            "credentials: QGIS could not store the authentication configuration; set a master password."
        )
    return config.id()


def sign_in_for(method: str, authcfg: str = "", **kwargs) -> SignIn:
    """A ``SignIn``; basic and client credentials take their secret from the auth configuration."""
    if method in SECRET_METHODS:
        username, secret = load_credentials(authcfg)
        return SignIn(method, username, secret, **kwargs)
    return SignIn(method, **kwargs)
