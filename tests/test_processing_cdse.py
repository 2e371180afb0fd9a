"""The Processing algorithm's CDSE options: job options and re-runs reach the run, failures said by cause."""

from __future__ import annotations

from qgis.core import QgsProcessingContext

from .test_processing import Feedback, algorithm, parameters  # noqa: F401 (the module's algorithm fixture)


def test_job_options_and_reruns_from_processing_reach_the_backend(algorithm, backend, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WAC_PASSWORD", "demo")
    backend.profile("cdse", memory_scale=8, resolution=100, concurrent_job_limit=0)  # every S2 job out of memory
    params = parameters(backend, tmp_path, SENSORS=[1], RERUNS=1,
                        JOB_OPTIONS="executor-memory=4G; max-executors=20")  # fmt: skip
    feedback = Feedback()
    _, ok = algorithm.run(params, QgsProcessingContext(), feedback)
    assert ok, feedback.errors
    options = [job["job_options"] for job in backend.jobs()]
    assert len(options) == 8  # 4 S2 jobs, each run once more (RERUNS=1)
    first = [o for o in options if o["executor-memory"] == "4G"]
    assert first == [{"executor-memory": "4G", "max-executors": 20}] * 4
    raised = {"executor-memory": "6144m", "executor-memoryOverhead": "2700m", "max-executors": 20}
    assert [o for o in options if o["executor-memory"] != "4G"] == [raised] * 4
    assert "4 failed: 4 out of memory, re-run with more memory" in feedback.errors
