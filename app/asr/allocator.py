"""The C allocator setting that keeps the server's resident memory from spreading over threads.

ONNX Runtime's arenas and NumPy's arrays come from glibc's malloc, called from the inference
threads, the event loop and ONNX Runtime's own threads. By default glibc may give each thread
its own heap arena (up to 8 per core), and memory freed in one stays there for that thread's
next allocations; long and short requests alternating over several threads then keep far more
resident than any moment needs. `configure()` caps the arenas at `ARENA_MAX` unless the
environment sets `MALLOC_ARENA_MAX` (glibc reads it at start). Elsewhere than glibc it does
nothing. ONNX Runtime's own arena is bounded in `app.asr.runtime` (`SHRINK_FROM_SAMPLES`), and
`trim()` returns the pages a long input's buffers leave free inside the heaps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

log = logging.getLogger(__name__)

ARENA_MAX = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)

_lock = threading.Lock()
_applied: dict[str, int] | None = None


def configure() -> dict[str, int]:
    """Apply the setting once per process; returns what was applied (empty where not glibc, or set by the environment)."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = _mallopt({"MALLOC_ARENA_MAX": (_M_ARENA_MAX, ARENA_MAX)})
        return dict(_applied)


def _mallopt(settings: dict[str, tuple[int, int]]) -> dict[str, int]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: their mallopt does nothing useful
        return {}
    applied = {}
    for env, (parameter, value) in settings.items():
        if env in os.environ:  # glibc took the environment's value at start
            continue
        if mallopt(parameter, value) == 1:
            applied[env] = value
        else:
            log.warning("mallopt(%d, %d) failed; resident memory may grow", parameter, value)
    return applied


_libc: ctypes.CDLL | None = None


def trim() -> None:
    """Return the free pages inside glibc's heaps to the system (`malloc_trim(0)`), where glibc.

    Freed blocks in the middle of a heap stay resident until reused; after a long input's
    buffers are freed (`app.asr.runtime.SHRINK_FROM_SAMPLES`) they are most of the heap, and
    holding them makes resident memory creep up with the mix of lengths. A trim takes a few
    milliseconds; it costs a long run about nothing (measured in docs/reliability.md)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return
    if hasattr(_libc, "malloc_trim") and hasattr(_libc, "gnu_get_libc_version"):
        _libc.malloc_trim(0)


def resident_mb() -> float:
    """This process's resident set (VmRSS) in MB, or 0.0 where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
