"""Per-epoch resource use: CPU taken by other processes, and this process's peak memory.

On a shared machine PyTorch's OpenMP threads slow down several-fold when another
process takes a core, so the training command reports how much of the machine's
CPU time other processes took during each epoch, next to the epoch's peak
resident memory (which shows memory stays bounded on long runs). Both come from
Linux's ``/proc``; elsewhere the fields are ``None`` (see :class:`ResourceMonitor`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    """Resource use over one interval.

    Attributes:
        other_cpu_share: Share (0-1) of the machine's CPU time, all cores together, that
            other processes took (hypervisor steal included); ``None`` where unavailable.
        peak_rss_mb: Peak resident set size of this process, MiB; ``None`` where unavailable.
    """

    other_cpu_share: float | None
    peak_rss_mb: float | None


class ResourceMonitor:
    """Measures :class:`Usage` between successive :meth:`lap` calls.

    Peak memory is the kernel's high-water mark (``VmHWM``), reset after each reading
    through ``clear_refs`` (Linux 4.0 or later). Where the reset is refused, ``peak_rss_mb``
    is the peak since the process started. Without ``/proc`` at all (macOS), it comes from
    ``getrusage``, also a peak since start, and ``other_cpu_share`` is ``None``.

    Args:
        proc: The proc file system's root; tests pass a fake tree.
    """

    def __init__(self, proc: str | os.PathLike[str] = "/proc") -> None:
        self._proc = Path(proc)
        # getrusage describes the real process, so it cannot stand in for a fake tree
        self._rusage_fallback = self._proc == Path("/proc")
        self._hwm_resettable = True
        self._reset_peak()
        self._cpu = self._read_cpu()

    def lap(self) -> Usage:
        """Returns the use since the previous call (or construction) and starts a new interval."""
        cpu = self._read_cpu()
        share = None
        if cpu is not None and self._cpu is not None:
            busy, total, own = (now - before for now, before in zip(cpu, self._cpu, strict=True))
            if total > 0:
                # own ticks and machine ticks are sampled at slightly different moments
                share = max(0, busy - own) / total
        self._cpu = cpu
        peak = self._read_peak_mb()
        self._reset_peak()
        return Usage(other_cpu_share=share, peak_rss_mb=peak)

    def _read_cpu(self) -> tuple[int, int, int] | None:
        """Machine busy and total ticks and this process's ticks (all in USER_HZ clock ticks)."""
        try:
            line = (self._proc / "stat").read_text().splitlines()[0]
            own_stat = (self._proc / "self" / "stat").read_text()
        except (OSError, IndexError):
            return None
        # guest time is already counted in user time, so the guest columns are left out
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
        busy = user + nice + system + irq + softirq + steal
        # the command name may contain spaces and ')', so fields are counted after the last ')'
        fields = own_stat.rsplit(")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
        return busy, busy + idle + iowait, own

    def _read_peak_mb(self) -> float | None:
        try:
            for line in (self._proc / "self" / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        if self._rusage_fallback:
            try:
                import resource
            except ImportError:  # Windows
                return None
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS
        return None

    def _reset_peak(self) -> None:
        if not self._hwm_resettable:
            return
        try:
            # O_WRONLY without O_CREAT: the file is write-only, and a missing one must not be created
            fd = os.open(self._proc / "self" / "clear_refs", os.O_WRONLY)
            try:
                os.write(fd, b"5")
            finally:
                os.close(fd)
        except OSError as err:
            self._hwm_resettable = False
            logger.info("cannot reset the memory high-water mark (%s): peak memory is the peak since start", err)


def warn_if_contended(usage: Usage, threshold: float = 0.10, log: logging.Logger = logger) -> bool:
    """Logs a warning when other processes took more than ``threshold`` of the machine's CPU time.

    Args:
        usage: One epoch's use, from :meth:`ResourceMonitor.lap`.
        threshold: Share (0-1) above which the epoch counts as contended.
        log: Where the warning goes.

    Returns:
        Whether the warning was logged; ``False`` when the share is unknown.
    """
    share = usage.other_cpu_share
    if share is None or share <= threshold:
        return False
    log.warning(
        "other processes took %.0f%% of the machine's CPU time this epoch (above %.0f%%): training slows "
        "down several-fold when it shares cores; stop the other jobs or set num_threads to the free cores",
        100 * share,
        100 * threshold,
    )
    return True
