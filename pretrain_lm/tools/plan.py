r"""Will this run fit, and how fast can it go? Ahead-of-time, without the hardware.

    python -m pretrain_lm.tools.plan --gin_file=bert/pod_base_tpu_v4_4x4_seq128.gin

Reads the same gin files as ``pretrain_lm.train``, builds the mesh on as many
simulated CPU devices as the mesh file asks for (``--num_devices`` where it says
``data = -1``), and compiles the real train step -- params, optimizer state and batch
as abstract arrays with their shardings, nothing allocated at full size. It prints,
per device:

* bytes of parameters and optimizer state (from the shardings: exact), and XLA's
  compiled memory analysis: arguments, outputs, donated (aliased) bytes and
  temporaries (activations, gradients, workspace), and the resulting peak;
* FLOPs of one step from XLA's cost analysis (every op), beside the model FLOPs
  counted from the config (matmuls, 3x forward);
* the step time at the device's stated peak (``DEVICE_PEAK_FLOPS`` in the mesh gin
  file or ``--peak_flops``) if it ran at 100% and at ``--mfu`` model-FLOPs
  utilisation, and tokens/s.

The compile is XLA:CPU's, not the TPU/GPU compiler's: fusion and rematerialisation
differ, so temporaries are an estimate (parameters and optimizer state are exact);
cross-device communication time is not modelled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from typing import Any

from absl import app, flags

from pretrain_lm import gin_utils

_GIN = gin_utils.define_gin_flags()
_NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", None, "Devices to simulate (default: data x model of the mesh file).")
_PEAK_FLOPS = flags.DEFINE_float(
    "peak_flops", None, "Peak FLOP/s of ONE device (default: DEVICE_PEAK_FLOPS in gin).")
_DEVICE_MEMORY = flags.DEFINE_float(
    "device_memory_gib", None, "Memory of one device in GiB (default: DEVICE_MEMORY_GIB).")
_MFU = flags.DEFINE_float("mfu", 0.5, "Model-FLOPs utilisation for the expected step time.")
_OUTPUT = flags.DEFINE_string("output_json", None, "Also write the plan as JSON here.")

GIB = 1024.0**3


@dataclasses.dataclass
class Plan:
    """What one train step needs, per device unless the name says otherwise."""

    mesh: dict[str, int]
    num_devices: int
    num_params: int
    global_batch_size: int
    tokens_per_step: int
    params_bytes: int
    optimizer_bytes: int
    argument_bytes: int
    output_bytes: int
    aliased_bytes: int
    temp_bytes: int
    peak_bytes: int
    xla_flops: float
    model_flops: float | None
    peak_flops: float | None = None
    device_memory_bytes: float | None = None
    mfu: float = 0.5

    @property
    def step_seconds_at_peak(self) -> float | None:
        flops = self.model_flops or self.xla_flops * self.num_devices
        if not self.peak_flops:
            return None
        return flops / (self.peak_flops * self.num_devices)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["step_seconds_at_peak"] = self.step_seconds_at_peak
        return out


def _sharded_bytes(tree: Any) -> int:
    """Bytes one device holds of a tree of abstract arrays with shardings."""
    import jax
    import numpy as np

    total = 0
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(leaf.shape) if leaf.shape else ()
        total += int(np.prod(shard, dtype=np.int64)) * leaf.dtype.itemsize
    return total


def plan_train_step(bindings: dict[str, Any], *, mfu: float = 0.5,
                    peak_flops: float | None = None,
                    device_memory_bytes: float | None = None) -> Plan:
    """Compiles the train step ``trainer.train`` is bound to and measures it.

    ``bindings`` are ``trainer.train``'s gin bindings (``gin.get_bindings``).
    """
    import jax

    from pretrain_lm import optimizers
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    model = bindings["model"]
    batch_size = bindings["batch_size"]
    partitioner = bindings.get("partitioner") or Partitioner()
    steps = bindings.get("schedule_steps") or bindings.get("train_steps") or 1
    optimizer = bindings.get("optimizer", optimizers.adamw)(total_steps=steps)
    trainer = Trainer(model, optimizer.tx, partitioner,
                      num_microbatches=bindings.get("num_microbatches", 1))
    batch_sharding = partitioner.batch_sharding()
    abstract_batch = {
        name: jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=batch_sharding)
        for name, value in model.example_batch(batch_size).items()}
    with partitioner.context():
        compiled = trainer._train_step.lower(trainer.abstract_state, abstract_batch).compile()
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    per_example = model.flops_per_example()
    example = model.example_batch(1)
    argument = int(memory.argument_size_in_bytes)
    output = int(memory.output_size_in_bytes)
    aliased = int(memory.alias_size_in_bytes)
    temp = int(memory.temp_size_in_bytes)
    return Plan(
        mesh=dict(partitioner.mesh.shape),
        num_devices=partitioner.mesh.size,
        num_params=trainer.num_params(),
        global_batch_size=batch_size,
        tokens_per_step=batch_size * model.tokens_per_example(example),
        params_bytes=_sharded_bytes(trainer.abstract_state.params),
        optimizer_bytes=_sharded_bytes(trainer.abstract_state.opt_state),
        argument_bytes=argument,
        output_bytes=output,
        aliased_bytes=aliased,
        temp_bytes=temp,
        peak_bytes=argument + output - aliased + temp,
        xla_flops=float(cost.get("flops", 0.0)),
        model_flops=None if per_example is None else per_example * batch_size,
        peak_flops=peak_flops,
        device_memory_bytes=device_memory_bytes,
        mfu=mfu,
    )


def report(plan: Plan) -> str:
    """The plan as a human-readable table."""
    def gib(n: float) -> str:
        return f"{n / GIB:9.3f} GiB"

    lines = [
        f"mesh {plan.mesh} ({plan.num_devices} devices); {plan.num_params:,} parameters; "
        f"global batch {plan.global_batch_size} ({plan.tokens_per_step:,} tokens/step)",
        "per device:",
        f"  parameters            {gib(plan.params_bytes)}",
        f"  optimizer state       {gib(plan.optimizer_bytes)}",
        f"  XLA arguments         {gib(plan.argument_bytes)}  (state + batch)",
        f"  XLA outputs           {gib(plan.output_bytes)}  ({gib(plan.aliased_bytes).strip()}"
        " donated: reuse the arguments' buffers)",
        f"  XLA temporaries       {gib(plan.temp_bytes)}  (activations, gradients, workspace)",
        f"  peak                  {gib(plan.peak_bytes)}",
    ]
    if plan.device_memory_bytes:
        verdict = "fits" if plan.peak_bytes <= plan.device_memory_bytes else "DOES NOT FIT"
        lines.append(f"  device memory         {gib(plan.device_memory_bytes)}  -> {verdict} "
                     f"({100 * plan.peak_bytes / plan.device_memory_bytes:.0f}% used)")
    lines.append(f"FLOPs per step: XLA {plan.xla_flops * plan.num_devices:.4g} "
                 f"({plan.xla_flops:.4g} per device)")
    if plan.model_flops:
        lines.append(f"                model {plan.model_flops:.4g} (matmuls from the config, "
                     f"{plan.model_flops / plan.tokens_per_step / 1e6:.1f} MFLOP/token)")
    if plan.step_seconds_at_peak:
        at_mfu = plan.step_seconds_at_peak / plan.mfu
        lines += [
            f"step time at {plan.peak_flops / 1e12:.1f} TFLOP/s per device: "
            f"{1e3 * plan.step_seconds_at_peak:.1f} ms at 100% MFU, {1e3 * at_mfu:.1f} ms at "
            f"{100 * plan.mfu:.0f}% MFU ({plan.tokens_per_step / at_mfu:,.0f} tokens/s)",
        ]
    return "\n".join(lines)


def _simulate_cpu_devices(n: int) -> None:
    """Asks XLA:CPU for ``n`` devices (must happen before jax starts its backend)."""
    flags_now = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                       os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = f"{flags_now} --xla_force_host_platform_device_count={n}".strip()
    os.environ["JAX_PLATFORMS"] = "cpu"


def main(argv: list[str]) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["JAX_PLATFORMS"] = "cpu"  # the plan compiles for simulated CPU devices
    gin_utils.start(argv, _GIN)
    import gin
    data, model = (_query(f"partitioning.Partitioner.{k}", d) for k, d in
                   (("data", -1), ("model", 1)))
    num_devices = _NUM_DEVICES.value or (data * model if data > 0 else None)
    if num_devices is None:
        sys.exit("error: the mesh file says data = -1 (all devices); pass --num_devices=N "
                 "for the slice you plan for.")
    _simulate_cpu_devices(num_devices)

    from pretrain_lm import trainer

    peak = _PEAK_FLOPS.value or gin_utils.macro("DEVICE_PEAK_FLOPS")
    memory_gib = _DEVICE_MEMORY.value or gin_utils.macro("DEVICE_MEMORY_GIB")
    plan = plan_train_step(
        gin.get_bindings(trainer.train), mfu=_MFU.value,
        peak_flops=float(peak) if peak else None,
        device_memory_bytes=float(memory_gib) * GIB if memory_gib else None)
    print(report(plan))
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            json.dump(plan.to_json(), f, indent=1)


def _query(name: str, default: int) -> int:
    import gin

    try:
        return int(gin.query_parameter(name))
    except ValueError:
        return default


if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
