"""ResourceMonitor: other processes' CPU share and peak memory per interval, from /proc."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from fer_utils.train.monitor import ResourceMonitor, Usage, warn_if_contended


def write_proc(proc, *, busy, idle, own, hwm_kb=None):
    """Writes a fake /proc tree: machine ticks split over user/system/steal, own ticks over utime/stime."""
    (proc / "self").mkdir(parents=True, exist_ok=True)
    user, system, steal = busy - busy // 2 - 5, busy // 2, 5
    # guest columns (last two) are already inside user time and must be ignored
    (proc / "stat").write_text(f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 999 999\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    utime, stime = own - own // 3, own // 3
    fields = ["S"] + ["0"] * 10 + [str(utime), str(stime), "777", "888"] + ["0"] * 37  # cutime, cstime ignored
    (proc / "self" / "stat").write_text(f"4242 (python (x) y) {' '.join(fields)}\n")
    if hwm_kb is not None:
        status = f"Name:\tpython\nVmPeak:\t 999999 kB\nVmHWM:\t {hwm_kb} kB\nVmRSS:\t 1 kB\n"
        (proc / "self" / "status").write_text(status)
    (proc / "self" / "clear_refs").write_text("")


def test_other_cpu_share_is_machine_busy_less_own_over_total(tmp_path):
    write_proc(tmp_path, busy=1000, idle=3000, own=400)
    monitor = ResourceMonitor(tmp_path)
    write_proc(tmp_path, busy=1150, idle=3050, own=500)

    assert monitor.lap().other_cpu_share == pytest.approx((150 - 100) / 200)


def test_each_lap_covers_only_the_time_since_the_previous_one(tmp_path):
    write_proc(tmp_path, busy=1000, idle=3000, own=400)
    monitor = ResourceMonitor(tmp_path)
    write_proc(tmp_path, busy=1150, idle=3050, own=500)
    monitor.lap()
    write_proc(tmp_path, busy=1250, idle=3150, own=500)

    assert monitor.lap().other_cpu_share == pytest.approx(100 / 200)


def test_own_ticks_above_machine_busy_ticks_clamp_share_to_zero(tmp_path):
    write_proc(tmp_path, busy=1000, idle=3000, own=400)
    monitor = ResourceMonitor(tmp_path)
    write_proc(tmp_path, busy=1100, idle=3100, own=503)

    assert monitor.lap().other_cpu_share == 0


def test_peak_rss_is_vmhwm_in_mib_and_the_mark_is_reset(tmp_path):
    write_proc(tmp_path, busy=1000, idle=3000, own=400, hwm_kb=204800)
    monitor = ResourceMonitor(tmp_path)
    (tmp_path / "self" / "clear_refs").write_text("")

    assert monitor.lap().peak_rss_mb == pytest.approx(200.0)
    assert (tmp_path / "self" / "clear_refs").read_text() == "5"


def test_missing_proc_files_give_none_fields(tmp_path):
    assert ResourceMonitor(tmp_path / "no_proc").lap() == Usage(other_cpu_share=None, peak_rss_mb=None)


def test_peak_rss_of_real_process_drops_after_the_mark_is_reset():
    monitor = ResourceMonitor()
    block = np.ones(256 * 2**20 // 8)  # 256 MiB, all pages touched by the fill
    del block
    first = monitor.lap().peak_rss_mb
    second = monitor.lap().peak_rss_mb

    assert first >= 256
    assert first - second >= 200


def test_busy_child_process_shows_as_other_cpu_share():
    busy_loop = "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass"
    monitor = ResourceMonitor()
    subprocess.run([sys.executable, "-c", busy_loop], check=True)  # this process sleeps in wait()
    busy = monitor.lap().other_cpu_share

    # the child keeps one core busy: 1/cores expected (0.5 on two cores), assert at least 40% of that.
    # (That this process's own time is not counted is checked exactly on a fake /proc above; on the real
    # machine any other load would blur it.)
    assert busy > 0.4 / os.cpu_count()


def test_contention_above_threshold_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="fer_utils.train.monitor"):
        assert warn_if_contended(Usage(other_cpu_share=0.37, peak_rss_mb=None), threshold=0.10)

    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "37%" in caplog.records[0].getMessage()


@pytest.mark.parametrize("share", [0.05, None])
def test_no_warning_below_threshold_or_when_share_unknown(caplog, share):
    with caplog.at_level(logging.WARNING, logger="fer_utils.train.monitor"):
        assert not warn_if_contended(Usage(other_cpu_share=share, peak_rss_mb=100.0), threshold=0.10)

    assert caplog.records == []
