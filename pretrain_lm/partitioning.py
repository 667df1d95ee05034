"""Device mesh, logical-axis rules and shardings (jax.jit with named shardings).

Models name their axes logically (``batch``, ``embed``, ``mlp`` ...); a
``Partitioner`` maps those names to the axes of a ``data`` x ``model`` device
mesh with rules bound in gin (``gin_configs/mesh/*.gin``). The same code runs on
one CPU, 8 simulated CPU devices or a TPU pod slice: only the mesh file changes.

Multi-host: ``initialize_distributed`` starts JAX's multi-controller runtime
(coordinator address / process count / process id from flags or the standard
environment variables); each process then feeds its own slice of the batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]

# Data parallelism over `data`; tensor (Megatron-style) parallelism over `model`.
DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("embed", None),
    ("kv", None),
    ("length", None),
)

# Fully sharded data parallelism on top: parameters' `embed` axis over `data`.
FSDP_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("vocab", "model"),
    ("mlp", "model"),
    ("heads", "model"),
    ("embed", "data"),
    ("kv", None),
    ("length", None),
)

RULE_PRESETS = {"default": DEFAULT_RULES, "fsdp": FSDP_RULES}

MESH_AXES = ("data", "model")


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Starts jax.distributed when asked to (flags or JAX_COORDINATOR_ADDRESS & co.).

    On a TPU pod slice or a SLURM cluster ``jax.distributed.initialize()`` finds
    everything itself; set ``JAX_DISTRIBUTED_AUTO=1`` (or pass the flags) there.
    On CPU the collectives go through gloo.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    auto = os.environ.get("JAX_DISTRIBUTED_AUTO", "") == "1"
    if coordinator_address is None and not auto:
        return
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())


@dataclasses.dataclass
class Partitioner:
    """Builds the mesh and turns logical axis names into ``NamedSharding``s.

    Args:
      data: size of the ``data`` mesh axis; -1 takes every device not used by ``model``.
      model: size of the ``model`` (tensor-parallel) mesh axis.
      rules: logical-axis -> mesh-axis rules: a preset name (``"default"``, ``"fsdp"``)
        or a sequence of ``(logical_name, mesh_axis_or_None)`` pairs.
      num_devices: use only the first N devices (tests compare 1 vs 8 devices).
    """

    data: int = -1
    model: int = 1
    rules: str | LogicalRules = "default"
    num_devices: int | None = None

    def __post_init__(self) -> None:
        devices = jax.devices()
        if self.num_devices is not None:
            devices = devices[: self.num_devices]
        n = len(devices)
        data = n // self.model if self.data == -1 else self.data
        if data * self.model != n:
            raise ValueError(
                f"Mesh data={self.data} x model={self.model} does not use the {n} devices "
                f"present; set --gin.Partitioner.data / .model so that data*model == {n} "
                "(data=-1 takes the rest).")
        if devices[0].platform == "tpu":  # follow the physical torus (ICI neighbours)
            from jax.experimental import mesh_utils

            grid = mesh_utils.create_device_mesh(
                (data, self.model), devices, allow_split_physical_axes=True)
        else:  # process-major order: each process's devices are neighbours on `data`
            grid = np.asarray(devices).reshape(data, self.model)
        self.mesh = Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))
        if isinstance(self.rules, str):
            if self.rules not in RULE_PRESETS:
                raise ValueError(f"Unknown partitioning rules {self.rules!r}; use one of "
                                 f"{sorted(RULE_PRESETS)} or a list of (logical, mesh) pairs.")
            self.rules = RULE_PRESETS[self.rules]
        self.rules = tuple(tuple(r) for r in self.rules)

    @property
    def data_size(self) -> int:
        return self.mesh.shape["data"]

    def logical_to_sharding(self, logical_specs: Any) -> Any:
        """Tree of logical ``PartitionSpec``s -> tree of ``NamedSharding``s."""
        return nn.logical_to_mesh_sharding(logical_specs, self.mesh, self.rules)

    def shardings_of_boxed(self, boxed_tree: Any) -> Any:
        """Shardings for a tree of (abstract) arrays in ``nn.Partitioned`` boxes.

        A dimension that the mesh axes of its rule do not divide evenly (e.g. the two
        token-type embeddings over a 4-way ``model`` axis) is replicated instead, and
        logged, rather than failing the whole run.
        """
        shardings = self.logical_to_sharding(nn.get_partition_spec(boxed_tree))
        shapes = jax.tree.map(
            lambda x: x.unbox(apply_constraint=False) if isinstance(x, nn.Partitioned) else x,
            boxed_tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))
        replicated: list[str] = []

        def fit(path: tuple, sharding: NamedSharding, array: Any) -> NamedSharding:
            spec = list(sharding.spec) + [None] * (array.ndim - len(sharding.spec))
            fitted = []
            for dim, axes in zip(array.shape, spec, strict=True):
                names = axes if isinstance(axes, tuple) else (axes,) if axes else ()
                ways = int(np.prod([self.mesh.shape[a] for a in names]))
                fitted.append(axes if dim % ways == 0 else None)
                if dim % ways:
                    replicated.append(f"{jax.tree_util.keystr(path)}{array.shape}")
            return NamedSharding(self.mesh, PartitionSpec(*fitted))

        fitted = jax.tree_util.tree_map_with_path(fit, shardings, shapes)
        if replicated:
            logging.info("Replicated (mesh axis does not divide the dimension): %s",
                         ", ".join(replicated))
        return fitted

    def batch_sharding(self, ndim: int = 2) -> NamedSharding:
        """Batch arrays are split over ``data`` on their leading axis."""
        del ndim
        return NamedSharding(self.mesh, PartitionSpec("data"))

    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Context in which to trace model code: the mesh and the logical rules."""
        with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
            yield
