"""What the Desktop UI bench (bench/ui_desktop.py) found holding QGIS's UI thread, each fixed and kept fixed."""

from __future__ import annotations

from qgis.core import QgsSettings

from wac_extractor.definitions import settings


def test_saving_settings_goes_through_one_qgssettings_and_reads_back(qgis_app, monkeypatch):
    """Each ``QgsSettings`` writes QGIS's whole ini file when it goes: the dock's settings saved one object
    each held the UI thread 100 ms on the Run click in QGIS Desktop (bench stall profile)."""
    made = []

    class Counted(QgsSettings):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(1)

    monkeypatch.setattr(settings, "QgsSettings", Counted)
    keys = [settings.Setting(f"stall_test/key{i}", int, 0) for i in range(20)]
    settings.save([settings.Bound(key, lambda i=i: 100 + i, lambda value: None) for i, key in enumerate(keys)])
    assert len(made) == 1
    read: dict = {}
    settings.load([settings.Bound(key, lambda: None, lambda v, k=key.name: read.update({k: v})) for key in keys])
    assert len(made) == 2
    assert read == {f"stall_test/key{i}": 100 + i for i in range(20)}
    QgsSettings().remove("wac_extractor/stall_test")
