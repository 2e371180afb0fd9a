"""``make mutation``: mutation score of the modules where a silent bug costs users most (issue 26).

For each group below, mutmut (requirements-dev.txt) mutates the group's modules one change at a time
and runs the group's fast tests (none starts the local backend) against every mutant: a mutant the
tests do not fail *survived*. The run happens in a scratch copy under ``bench/tmp/mutation/<group>``
(git-ignored) that holds only the package, the tests and ``pyproject.toml`` with the ``[tool.mutmut]``
table added: the repository's own ``pyproject.toml`` carries no mutmut configuration, and no venv,
``.git`` or build output is copied. pytest-qgis and pytest-qt are not loaded (with pytest-qgis a
forked mutant run crashed at fixture teardown); tests that need them or the backend are deselected.

Writes ``bench/mutation.json`` (per group of modules: mutants, killed, survived, timeout, no tests,
seconds, date, the survivors' names and the figures per file), then regenerates the ``mutation``
table of ``bench/README.md`` (``bench/report.py``). ``python -m bench.mutation credits tracker`` runs
only those groups and updates them in the same file. Every job runs under ``nice -n 19`` (the
machine is shared).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "mutation.json"
SCRATCH = REPO / "bench" / "tmp" / "mutation"

# group -> (modules to mutate, fast test files). Tests that use the local backend (fixtures ``backend``,
# ``local_backend``) or pytest-qgis/pytest-qt fixtures are deselected in the scratch copy (FAST_ONLY).
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "download": (["wac_extractor/core/results/download.py"],
                 ["tests/test_result_check.py", "tests/test_mutants_download.py"]),
    "credits": (["wac_extractor/core/jobs/credits.py"], ["tests/test_mutants_credits.py"]),
    "tiling": (["wac_extractor/core/planning/tiling.py"], ["tests/test_planning.py", "tests/test_mutants_planning.py"]),
    "job_table": (["wac_extractor/core/planning/job_table.py"],
                  ["tests/test_planning.py", "tests/test_mutants_planning.py"]),
    "timewindows": (["wac_extractor/core/planning/timewindows.py"],
                    ["tests/test_planning.py", "tests/test_mutants_planning.py"]),
    "mosaics": (["wac_extractor/core/results/mosaics.py"],
                ["tests/test_mosaics.py", "tests/test_mutants_mosaics.py", "tests/test_mosaic_overviews.py"]),
    "recipes": (["wac_extractor/core/recipes/*.py"], ["tests/test_process_graphs.py", "tests/test_mutants_recipes.py"]),
    "tracker": (["wac_extractor/core/jobs/tracker.py"], ["tests/test_tracker.py", "tests/test_mutants_tracker.py"]),
}  # fmt: skip

# Appended to the scratch copy's tests/conftest.py: keep only the tests that need neither the local backend
# nor a QGIS application from pytest-qgis / a qtbot from pytest-qt (both plugins are off, see above).
FAST_ONLY = '''

SLOW_FIXTURES = {"backend", "local_backend", "qgis_app", "qgis_iface", "qtbot", "qgis_new_project"}


def pytest_collection_modifyitems(config, items):
    """Mutation runs (bench/mutation.py): only the fast tests."""
    slow = [item for item in items if SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]
'''

PYTEST_ARGS = ["-p", "no:pytest_qgis", "-p", "no:pytest-qt", "-p", "no:cacheprovider", "-q"]


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(group: str) -> Path:
    """A fresh scratch copy for one group: the package, the tests, pyproject.toml with [tool.mutmut]."""
    modules, tests = GROUPS[group]
    tests = [t for t in tests if (REPO / t).exists()]
    work = SCRATCH / group
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "artifacts")
    shutil.copytree(REPO / "wac_extractor", work / "wac_extractor", ignore=skip)
    shutil.copytree(REPO / "tests", work / "tests", ignore=skip)
    with open(work / "tests" / "conftest.py", "a") as conftest:
        conftest.write(FAST_ONLY)
    pyproject = (REPO / "pyproject.toml").read_text()
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["wac_extractor"]\n'
        f"only_mutate = {toml_list(modules)}\n"
        f"pytest_add_cli_args = {toml_list(PYTEST_ARGS)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(pyproject)
    return work


def counts(work: Path) -> dict:
    """A group's mutants by outcome, summed over its files and per file, with the survivors' names."""
    from mutmut.stats import status_by_exit_code

    total = {"mutants": 0, "killed": 0, "survived": 0, "timeout": 0, "no_tests": 0, "other": 0, "survivors": []}
    files = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(work / "mutants"))[: -len(".meta")]
        outcome = {
            name: status_by_exit_code[code].replace(" ", "_")
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()
        }
        if not outcome:
            continue
        entry = {
            key: sum(1 for s in outcome.values() if s == key) for key in ("killed", "survived", "timeout", "no_tests")
        }
        entry = {"mutants": len(outcome), **entry}
        entry["other"] = entry["mutants"] - sum(entry[k] for k in ("killed", "survived", "timeout", "no_tests"))
        files[module] = entry
        for key, value in entry.items():
            total[key] += value
        total["survivors"] += sorted(name for name, status in outcome.items() if status == "survived")
    return {**total, "files": files}


def run_group(group: str) -> dict:
    work = prepare(group)
    started = time.perf_counter()
    command = ["nice", "-n", "19", sys.executable, "-m", "mutmut", "run", "--max-children", "2"]
    log = work / "mutmut.log"
    with open(log, "w") as output:
        code = subprocess.call(command, cwd=work, stdout=output, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"mutmut failed for {group} (exit {code}); see {log}")
    modules, tests = GROUPS[group]
    return {"modules": modules, "tests": [t for t in tests if (REPO / t).exists()], **counts(work),
            "seconds": round(seconds), "measured_at": dt.datetime.now().strftime("%Y-%m-%d %H:%M")}  # fmt: skip


# Run in the scratch copy's mutants/ folder: every survivor against the tests, in one process (pytest.main per
# mutant; the trampolines mutmut wrote read MUTANT_UNDER_TEST at each call). Prints "@@replay<TAB>mutant<TAB>failed
# tests" lines.
REPLAY = """
import os, sys, pytest
names, tests, args = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3].split(",")
class Failed:
    def __init__(self): self.ids = []
    def pytest_runtest_logreport(self, report):
        if report.failed: self.ids.append(report.nodeid.split("::", 1)[-1])
for name in names:
    os.environ["MUTANT_UNDER_TEST"] = name
    failed = Failed()
    pytest.main([*args, "-qq", *tests], plugins=[failed])
    print("@@replay\\t" + name + "\\t" + " ".join(sorted(set(failed.ids))), flush=True)
"""


def kills(group: str) -> dict:
    """Which current tests fail each survivor of the last run of ``group`` (its scratch copy).

    Replays every survivor with the tests copied afresh into the scratch copy: how a new test is
    seen failing on the mutant it was written for.
    """
    mutants = SCRATCH / group / "mutants"
    if not mutants.is_dir():
        raise SystemExit(f"no scratch copy for {group}: run 'python -m bench.mutation {group}' first")
    survivors = counts(SCRATCH / group)["survivors"]
    shutil.copytree(REPO / "tests", mutants / "tests", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "artifacts", "conftest.py"))  # fmt: skip
    tests = [t for t in GROUPS[group][1] if (REPO / t).exists()]
    command = ["nice", "-n", "19", sys.executable, "-c", REPLAY, ",".join(survivors), ",".join(tests),
               ",".join(PYTEST_ARGS)]  # fmt: skip
    run = subprocess.run(command, cwd=mutants, capture_output=True, text=True)
    found = dict(line.split("\t")[1:] for line in run.stdout.splitlines() if line.startswith("@@replay\t"))
    for name in survivors:
        print(f"{name}\t{found.get(name, '?') or 'survives'}", flush=True)
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["--kills"]:
        for group in argv[1:]:
            kills(group)
        return 0
    groups = argv or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.setdefault("groups", {})
    results["tool"] = f"mutmut {version('mutmut')}"
    for group in groups:
        print(f"== mutation: {group} ({', '.join(GROUPS[group][0])})", flush=True)
        entry = run_group(group)
        results["groups"][group] = entry
        results["groups"] = {g: results["groups"][g] for g in GROUPS if g in results["groups"]}
        OUT.write_text(json.dumps(results, indent=1) + "\n")  # after every group: a crash keeps the others
        reached = entry["mutants"] - entry["no_tests"]
        print(
            f"   {entry['killed']} of {reached} reached mutants killed ({entry['mutants']} in all), "
            f"{entry['survived']} survived, {entry['timeout']} timeout, {entry['seconds']} s",
            flush=True,
        )
    from bench import report

    report.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
