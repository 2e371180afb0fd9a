"""Install what QGIS does not ship (openeo) into a folder owned by the plugin, without touching QGIS's own
numpy, pandas, pyproj or shapely. Plain Python (no Qt): the plugin runs :func:`install` in a QgsTask.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional

PLUGIN_DIR = Path(__file__).resolve().parent.parent  # the plugin folder (this module is in qgis_glue/)
# Packages QGIS (or the OS) already provides: pip must keep exactly these versions.
KEEP_FROM_QGIS = ("numpy", "pandas", "pyproj", "shapely", "GDAL", "requests", "urllib3", "python-dateutil")
# The openeo releases the plugin supports: the oldest and the newest are tested (make test runs the runner and
# end-to-end tests with both). Kept equal to requirements.txt by a test.
OPENEO_RANGE = ">=0.48.0,<0.54"
REQUIRED = {"openeo": OPENEO_RANGE}


def requirements_file() -> Path:
    """``requirements.txt`` shipped inside the plugin (``make zip`` copies it), or the repo's."""
    for candidate in (PLUGIN_DIR / "requirements.txt", PLUGIN_DIR.parent / "requirements.txt"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("requirements.txt is missing from the plugin; reinstall the plugin zip.")


def base_constraints_file() -> Optional[Path]:
    for candidate in (PLUGIN_DIR / "constraints.txt", PLUGIN_DIR.parent / "constraints.txt"):
        if candidate.exists():
            return candidate
    return None


def default_target() -> Path:
    """``<QGIS profile>/python/wac_extractor_deps`` (next to the profile's plugins)."""
    return PLUGIN_DIR.parent.parent / "wac_extractor_deps"


def activate(target: Path) -> None:
    """Put the dependency folder on ``sys.path`` (after QGIS's own paths, so QGIS's packages win)."""
    if target.is_dir() and str(target) not in sys.path:
        sys.path.append(str(target))
        importlib.invalidate_caches()


def openeo_in_use() -> Optional[tuple]:
    """(version, folder) of the openeo that QGIS's Python has imported, or would import; None if none."""
    import importlib.util

    module = sys.modules.get("openeo")
    if module is not None and getattr(module, "__file__", None):
        return str(getattr(module, "__version__", "?")), Path(module.__file__).resolve().parent.parent
    spec = importlib.util.find_spec("openeo")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).resolve().parent.parent
    found = [d.version for d in importlib.metadata.distributions(name="openeo", path=[str(folder)])]
    return (found[0] if found else "?"), folder


def openeo_conflict(target: Optional[Path] = None) -> str:
    """'' unless QGIS's Python has an openeo outside the supported releases, from outside our own
    folder: then why WAC Extractor cannot run, and what to do.

    Every plugin shares QGIS's Python, hence one ``openeo``: the official openEO plugin installs the
    newest one through qpip. WAC Extractor uses that one copy (importing a second copy of a package
    under the same name is not possible) when it is a release it supports.
    """
    in_use = openeo_in_use()
    wanted = REQUIRED["openeo"]
    if in_use is None or in_range(in_use[0], wanted):
        return ""
    version, folder = in_use
    if target is not None and folder == Path(target).resolve():
        return ""  # our own folder: missing() offers to install a supported release there
    return (
        f"QGIS has openeo {version} (from {folder}, installed by another plugin or by hand), and every plugin "
        f"shares it; WAC Extractor's runs need openeo {describe_range(wanted)} (the releases it is tested with). "
        f'Install one there (pip install --target "{folder}" --upgrade "openeo{wanted}"; the openEO plugin works '
        "with it), then restart QGIS. The dock stays closed until then."
    )


def missing(requirements=REQUIRED) -> List[str]:
    """Requirements that are absent or outside their range, e.g. ``['openeo>=0.48.0,<0.54 (found 0.40.0)']``.

    A requirement is a range (``">=0.48.0,<0.54"``) or a release (``"0.53.0"``: that minor release, at least).
    """
    problems = []
    for name, wanted in requirements.items():
        spec = wanted if wanted[:1] in "<>=" else f"=={wanted}"
        try:
            found = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name}{spec} (not installed)")
            continue
        if not in_range(found, wanted):
            problems.append(f"{name}{spec} (found {found})")
    return problems


def in_range(version: str, wanted: str) -> bool:
    """Whether ``version`` meets ``wanted``: a range of ``>=``/``<`` bounds, or a release (its minor, at least)."""
    have = _version_tuple(version)
    if wanted[:1] not in "<>=":
        return have[:2] == _version_tuple(wanted)[:2] and have >= _version_tuple(wanted)
    for bound in wanted.split(","):
        operator, limit = re.match(r"\s*([<>=]=?)\s*(\S+)", bound).groups()
        limit_tuple = _version_tuple(limit)
        ok = {">=": have >= limit_tuple, ">": have > limit_tuple, "<": have < limit_tuple,
              "<=": have <= limit_tuple, "==": have == limit_tuple}[operator]  # fmt: skip
        if not ok:
            return False
    return True


def describe_range(wanted: str) -> str:
    """``">=0.48.0,<0.54"`` as a person reads it: ``0.48.0 to 0.53.x``."""
    bounds = dict(re.match(r"\s*([<>=]=?)\s*(\S+)", b).groups() for b in wanted.split(","))
    if ">=" in bounds and "<" in bounds:
        below = _version_tuple(bounds["<"])
        return f"{bounds['>=']} to {below[0]}.{below[1] - 1}.x" if len(below) == 2 and below[1] else wanted
    return wanted


def _version_tuple(version: str):
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def qgis_constraints() -> List[str]:
    """``name==version`` for every package QGIS's Python already has, plus the project's own constraints."""
    lines = []
    for name in KEEP_FROM_QGIS:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    pinned = {line.split("==")[0].lower() for line in lines}
    base = base_constraints_file()
    if base is not None:
        for line in base.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and re.split(r"[<>=!~ ]", line)[0].lower() not in pinned:
                lines.append(line)
    return lines


def python_executable() -> str:
    """The Python interpreter QGIS embeds (``sys.executable`` is the QGIS binary itself)."""
    if Path(sys.executable).name.lower().startswith("python"):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        Path(sys.exec_prefix) / "bin" / f"python{version}",
        Path(sys.exec_prefix) / "bin" / "python3",
        Path(sys.exec_prefix) / "python.exe",
        Path(sys.exec_prefix) / "python3.exe",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"no Python {version} interpreter found next to QGIS in {sys.exec_prefix}.")


def pip_command(target: Path, constraints: Path) -> List[str]:
    return [
        python_executable(), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--upgrade",
        "--target", str(target), "-r", str(requirements_file()), "-c", str(constraints),
    ]  # fmt: skip


def install(target: Path, on_line: Callable[[str], None] = print, should_stop: Callable[[], bool] = lambda: False):
    """pip-install the plugin's requirements into ``target``; returns pip's exit code."""
    target.mkdir(parents=True, exist_ok=True)
    constraints = target / "qgis-constraints.txt"
    constraints.write_text("\n".join(qgis_constraints()) + "\n")
    command = pip_command(target, constraints)
    if subprocess.run(command[:3] + ["--version"], capture_output=True).returncode != 0:
        raise RuntimeError(
            f"pip is not available for QGIS's Python ({command[0]}); install it first "
            "(Debian/Ubuntu: sudo apt install python3-pip), then try again."
        )
    on_line("$ " + " ".join(command))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        on_line(line.rstrip())
        if should_stop():
            process.terminate()
            break
    code = process.wait()
    if code == 0:
        # pip --target copies every dependency, also those QGIS has: drop the copies so QGIS's own win.
        provided = {line.split("==")[0] for line in qgis_constraints() if "==" in line}
        remove_distributions(target, provided)
    return code


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def remove_distributions(target: Path, names) -> List[str]:
    """Remove the given distributions (and their files, per RECORD) from a ``--target`` folder."""
    import shutil

    wanted = {_normalize(n) for n in names}
    removed = []
    for dist_info in target.glob("*.dist-info"):
        project = _normalize(dist_info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        if project not in wanted:
            continue
        record = dist_info / "RECORD"
        lines = record.read_text().splitlines() if record.exists() else []
        for top in {line.split(",")[0].split("/")[0] for line in lines} - {"..", "", dist_info.name}:
            path = target / top
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(project)
    return removed


def check_after_install(target: Path) -> str:
    """'' when openeo now imports; otherwise what the user should do."""
    activate(target)
    problems = missing()
    if not problems:
        try:
            importlib.import_module("openeo")
            return ""
        except ImportError as exc:
            return f"openeo was installed but does not import ({exc}); restart QGIS."
    return "Still missing: " + ", ".join(problems) + ". Restart QGIS, or see the WAC Extractor log."
