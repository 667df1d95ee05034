"""Host-process settings that must be made before JAX (and TensorFlow) start.

``import_tensorflow_quietly`` loads the input pipeline's TensorFlow without the CUDA
start-up lines it prints on machines that have no GPU (see its docstring).

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
import os
import platform
import sys
import tempfile

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


# TensorFlow (the input pipeline's) start-up lines that are not problems on a machine
# without an accelerator; everything else it prints at import goes through.
_TF_NOISE_ALWAYS = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)
_TF_NOISE_WITHOUT_GPU = (
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
)


def has_nvidia_gpu() -> bool:
    """Whether this machine exposes an NVIDIA device node (a CUDA driver to talk to)."""
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow for the input pipeline, hidden from the accelerators JAX uses,
    without its start-up noise on a machine that has no GPU.

    TensorFlow's C++ start-up lines are printed before its log settings apply, so
    ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them: on a CPU machine they include
    ``failed call to cuInit`` and ``Could not find cuda drivers``, which read as failures
    and are not. The import (and TensorFlow's device discovery, triggered here by hiding
    the GPUs) runs with file descriptor 2 captured; the known noise lines are dropped and
    every other line is written back to stderr. On a GPU machine the CUDA lines are kept
    (there they can be real). ``TF_ENABLE_ONEDNN_OPTS=0`` (unless set) keeps TensorFlow's
    oneDNN kernels, which only the input pipeline would use, from logging at run time.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    noise = _TF_NOISE_ALWAYS + (() if has_nvidia_gpu() else _TF_NOISE_WITHOUT_GPU)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.set_visible_devices([], "GPU")  # the accelerators are JAX's
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not any(n in line for n in noise)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
