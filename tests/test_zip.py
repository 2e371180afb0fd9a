"""`make zip` assembles the installable plugin from wac_extractor/, metadata.txt and resources/."""

from __future__ import annotations

import configparser
import subprocess
import zipfile

from .conftest import REPO


def test_make_zip_builds_an_installable_plugin():
    done = subprocess.run(["make", "-C", str(REPO), "zip"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(REPO / "wac_extractor.zip") as archive:
        names = archive.namelist()
        metadata = configparser.ConfigParser(interpolation=None)
        metadata.read_string(archive.read("wac_extractor/metadata.txt").decode())
    assert all(name.startswith("wac_extractor/") for name in names)  # one folder, as QGIS's installer expects
    for needed in ("__init__.py", "plugin.py", "core/recipes/lcfm.py", "core/jobs/runner.py", "metadata.txt",
                   "resources/icon.svg", "requirements.txt", "constraints.txt", "LICENSE"):  # fmt: skip
        assert f"wac_extractor/{needed}" in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or "local_backend" in n]
    general = metadata["general"]
    assert general["version"] in done.stdout and general["hasProcessingProvider"] == "yes"
    assert general["icon"] == "resources/icon.svg"
