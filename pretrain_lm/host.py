"""Host-process settings for XLA:CPU that must be made before JAX starts its CPU client.

XLA:CPU allocates each executable's temporary buffer afresh at every call (with
``posix_memalign``, from a worker thread) and frees it when the call ends. For a
train step that buffer holds the activations and gradients: 0.9 GB for BERT L4/H256
at batch 32 x 128. glibc serves a request that large with ``mmap`` (a worker
thread's arena cannot hold it) and unmaps it on ``free``, so every step
page-faults ~250k fresh 4 KiB pages into existence: ~0.7 s of kernel time on two
cores, about a quarter of the step.

``keep_freed_memory`` makes glibc serve every thread from its main heap, never
with ``mmap``, and keep freed memory instead of trimming it, so the next step
reuses the same (already mapped) pages. The process's resident memory then stays
at its peak, which is what a training process reaches anyway.
"""

from __future__ import annotations

import ctypes
import platform

from absl import logging

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def keep_freed_memory() -> bool:
    """Keeps large host allocations mapped for reuse (glibc only; else a no-op).

    Call it before the first JAX computation: threads that have allocated already
    keep their own arenas, whose large allocations still go through ``mmap``.
    Returns whether the settings were applied.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = all((
        mallopt(_M_ARENA_MAX, 1),  # one arena: worker threads allocate from the main heap
        mallopt(_M_MMAP_MAX, 0),  # ... which grows with brk, never with mmap
        mallopt(_M_TRIM_THRESHOLD, -1),  # and is never handed back to the OS (no trimming)
    ))
    if not applied:
        logging.warning("mallopt refused a setting; XLA:CPU steps may page-fault their "
                        "temporary buffers afresh at every call.")
    return applied
