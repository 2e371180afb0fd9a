"""A result that is not what the job's graph makes (``/_control/config {"result_tamper": ...}``).

Applied to the NetCDF a job wrote, after it ran: ``drop_variable`` removes its first variable,
``extra_variable`` adds ``EXTRA`` (a copy of the first), ``add_time`` gives every variable a time
axis of one step (``t``). A client's result check must refuse each of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

MODES = ("drop_variable", "extra_variable", "add_time")


def tamper(path: Path, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"result_tamper: {mode!r} is not one of {', '.join(MODES)}")
    from .executor import NETCDF_LOCK

    with NETCDF_LOCK, xr.open_dataset(path, decode_cf=False) as opened:
        dataset = opened.load()
    names = [name for name in dataset.data_vars if name != "crs"]
    if mode == "drop_variable":
        dataset = dataset.drop_vars(names[0])
    elif mode == "extra_variable":
        dataset["EXTRA"] = dataset[names[0]].copy()
    elif "t" not in dataset.dims:
        for name in names:
            dataset[name] = dataset[name].expand_dims(t=1).assign_attrs(dataset[name].attrs)
        time_attrs = {"units": "days since 1990-01-01", "standard_name": "time", "axis": "T"}
        dataset["t"] = xr.DataArray(np.array([12053], dtype="int32"), dims="t", attrs=time_attrs)
    temporary = path.with_suffix(".nc.tamper")
    with NETCDF_LOCK:
        dataset.to_netcdf(temporary, engine="netcdf4")
    temporary.replace(path)
