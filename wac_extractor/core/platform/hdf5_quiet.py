"""Silence HDF5's own error printing in the calling thread (written by hand: GDAL has no switch for it).

Opening a NetCDF-4 file, netCDF-C probes each variable for optional attributes (the
``_Quantize...`` ones) and HDF5 prints an ``HDF5-DIAG`` block to stderr for each one it does not
find. netCDF-C turns that printing off, but HDF5 keeps the setting per thread, so every worker
thread that opens a result printed ~10 blocks per variable (50,000 lines for the 8-job demo).
Real errors still reach us: GDAL raises them as exceptions.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_H5E_DEFAULT = ctypes.c_int64(0)
_LIBRARIES = ("libhdf5_serial.so.103", "libhdf5.so.103", "libhdf5_serial.so.310", "libhdf5.so.310")


def _hdf5():
    for name in (*_LIBRARIES, ctypes.util.find_library("hdf5_serial"), ctypes.util.find_library("hdf5")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)  # the copy GDAL already loaded
        except OSError:
            continue
    return None


_LIBRARY = None


def quiet_hdf5() -> None:
    """No HDF5-DIAG blocks on stderr from this thread (a no-op where HDF5 is not found).

    Called before each batch of opens, not once per thread: something (HDF5 starting anew once its
    last file closed) turned the printing back on, and the demo printed 924 blocks after its run.
    """
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _hdf5() or False
    if _LIBRARY:
        try:
            _LIBRARY.H5Eset_auto2(_H5E_DEFAULT, None, None)
        except AttributeError:
            pass
