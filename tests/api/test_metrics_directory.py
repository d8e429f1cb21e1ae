"""The multi-process metrics directory stays bounded: files of exited processes are
folded into one archive per kind, and every total reads the same before and after."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import MergingCollector, merge_dead_processes

# A process that writes one of each kind the services use, then exits.
WRITER = """
import sys
from prometheus_client import Counter, Gauge, Histogram
n = float(sys.argv[1])
Counter("jobs", "jobs", ["kind"]).labels("a").inc(n)
Histogram("took", "took", buckets=(1, 10)).observe(n)
Gauge("latest", "latest", multiprocess_mode="mostrecent").set(n)
Gauge("peak", "peak", multiprocess_mode="max").set(n)
Gauge("busy", "busy", multiprocess_mode="livesum").set(1)
"""


def _write(directory: Path, *values: int) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for value in values:
        subprocess.run([sys.executable, "-c", WRITER, str(value)], env=env, check=True)


def _samples(directory: Path) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(MergingCollector(str(directory)))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.db"))


def test_exited_processes_files_are_folded_and_totals_kept(tmp_path):
    _write(tmp_path, 3, 20, 5)
    assert len(_files(tmp_path)) == 15  # 5 kinds x 3 processes, all exited

    assert merge_dead_processes(str(tmp_path)) == 15
    assert _files(tmp_path) == [
        "counter_archive.db",
        "gauge_max_archive.db",
        "gauge_mostrecent_archive.db",
        "histogram_archive.db",
    ]  # live gauges of exited processes are gone, as prometheus-client's own would be
    samples = _samples(tmp_path)
    assert samples[("jobs_total", (("kind", "a"),))] == 28
    assert samples[("took_count", ())] == 3
    assert samples[("took_bucket", (("le", "1.0"),))] == 0
    assert samples[("took_bucket", (("le", "10.0"),))] == 2
    assert samples[("took_sum", ())] == 28
    assert samples[("latest", ())] == 5  # the most recent write, not the largest
    assert samples[("peak", ())] == 20
    assert ("busy", ()) not in samples


def test_the_directory_stays_bounded_as_processes_come_and_go(tmp_path):
    for round_ in range(3):
        _write(tmp_path, 1, 1)
        samples = _samples(tmp_path)  # a scrape folds what exited since the last one
        assert samples[("jobs_total", (("kind", "a"),))] == 2 * (round_ + 1)
        assert len(_files(tmp_path)) == 4


def test_a_live_process_keeps_its_own_file(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    live = subprocess.Popen(
        [sys.executable, "-c", WRITER + "\nprint('written', flush=True)\nsys.stdin.read()", "7"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert live.stdout.readline().strip() == "written"
        assert merge_dead_processes(str(tmp_path)) == 0
        assert f"counter_{live.pid}.db" in _files(tmp_path)
        assert _samples(tmp_path)[("busy", ())] == 1
    finally:
        live.communicate("")
    assert merge_dead_processes(str(tmp_path)) == 5


def test_a_missing_directory_is_created_before_the_first_sample(tmp_path):
    """Containers mount an empty /tmp: the worker would crash on its first metric."""
    directory = tmp_path / "tmp" / "metrics"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    result = subprocess.run(
        [sys.executable, "-c", "import shared.metrics"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert any(directory.glob("counter_*.db"))
