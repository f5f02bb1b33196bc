"""Device mesh and the rule table that maps logical axis names onto it.

Parameters are created with logical axis names (``embed``, ``mlp``, ``heads``, ``kv``,
``conv``, ``stacked``, ``latent``); batches carry ``batch`` on their leading axis. A rule table
maps each logical name to a mesh axis (or None = replicated), so the same model runs
data parallel, tensor parallel over ``model``, or both, by changing the config only.
With ``config.mesh.fsdp`` every large parameter (and its optimizer state) is further
split over ``data`` along its largest divisible dimension (fully sharded data
parallelism); ``initialize_distributed`` joins the processes of a multi-host job.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "model")

# Logical axis -> mesh axis. Activations and the batch split over "data"; the wide
# dimensions of feed-forward and attention layers split over "model" (tensor
# parallelism when the "model" axis is larger than 1).
DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"),
    ("embed", None),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv", None),
    ("conv", None),
    ("stacked", None),
    ("latent", None),
    ("conv_in", None),
    ("conv_out", None),
    ("classes", None),
)


def mesh_shape(data: int, model: int, num_devices: int) -> tuple[int, int]:
    """Resolves the mesh sizes ``config.mesh.{data,model}`` (-1 = all remaining devices) to a shape."""
    given = data, model
    data, model = int(data), int(model)
    for key, value in (("data", data), ("model", model)):
        if value == 0 or value < -1:
            raise ValueError(f"config.mesh.{key}={value}: use a positive size or -1 (all remaining devices).")
    if data == -1 and model == -1:
        raise ValueError("config.mesh.data and config.mesh.model cannot both be -1.")
    if data == -1:
        data = num_devices // model
    if model == -1:
        model = num_devices // data
    if data * model != num_devices:
        raise ValueError(
            f"config.mesh (data={given[0]}, model={given[1]}) needs "
            f"{data * model} devices but {num_devices} are available; set config.mesh.data=-1 "
            "to use all devices for data parallelism."
        )
    return data, model


def make_mesh(data: int = -1, model: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The ("data", "model") mesh of those sizes (``config.mesh.data``, ``config.mesh.model``; -1: all
    remaining devices) over ``devices`` (default: all). The default is data parallel over every device."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(data, model, len(devices))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def logical_rules(config: ml_collections.ConfigDict) -> tuple[tuple[str, str | None], ...]:
    """The rule table, with ``config.mesh.rules`` (a list of [logical, mesh]) overriding."""
    rules = dict(DEFAULT_RULES)
    for logical, mesh_axis in config.mesh.get("rules", None) or ():
        if mesh_axis is not None and mesh_axis not in MESH_AXES:
            raise ValueError(f"config.mesh.rules: mesh axis {mesh_axis!r} for {logical!r} is not one of {MESH_AXES}.")
        rules[logical] = mesh_axis
    return tuple(rules.items())


def fsdp_spec(shape: Sequence[int], spec: PartitionSpec, data_size: int, min_size: int) -> PartitionSpec:
    """Adds the "data" axis to ``spec`` on the largest dimension it divides.

    Leaves with fewer than ``min_size`` elements, leaves already split over "data" and
    leaves without a free dimension divisible by ``data_size`` keep ``spec``.
    """
    entries = list(spec) + [None] * (len(shape) - len(spec))
    used = {a for e in entries for a in (e if isinstance(e, tuple) else (e,)) if a is not None}
    if data_size == 1 or "data" in used or math.prod(shape) < min_size:
        return spec
    free = [i for i, n in enumerate(shape) if entries[i] is None and n % data_size == 0]
    if not free:
        return spec
    dim = max(free, key=lambda i: shape[i])
    entries[dim] = "data"
    return PartitionSpec(*entries)


def tree_shardings(
    abstract_boxed: Any,
    mesh: Mesh,
    rules: Sequence[tuple[str, str | None]],
    *,
    fsdp_min_size: int | None = None,
) -> Any:
    """NamedShardings for a tree whose leaves may be boxed with logical axis names.

    Unboxed leaves (step counters, keys) are replicated. With ``fsdp_min_size`` set,
    every leaf of at least that many elements is also split over "data" (``fsdp_spec``);
    the optimizer state mirrors the parameters, so it is split the same way.
    """
    specs = nn.get_partition_spec(abstract_boxed)
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    if fsdp_min_size is None:
        return shardings
    data_size = mesh.shape["data"]
    return jax.tree.map(
        lambda leaf, s: NamedSharding(mesh, fsdp_spec(leaf.shape, s.spec, data_size, fsdp_min_size)),
        nn.unbox(abstract_boxed),
        shardings,
    )


def per_device_bytes(tree: Any, device: jax.Device | None = None) -> int:
    """Bytes of ``tree``'s jax.Arrays held on ``device`` (default: the first local one)."""
    device = jax.local_devices()[0] if device is None else device
    return sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(tree)
        for shard in leaf.addressable_shards
        if shard.device == device
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over "data", the rest replicated."""
    return NamedSharding(mesh, PartitionSpec("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles each host's rows [b, ...] into global jax.Arrays [b * hosts, ...]."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """Validates ``config.batch_size`` against the mesh; returns the per-host batch."""
    data = mesh.shape["data"]
    if global_batch_size % data:
        raise ValueError(
            f"config.batch_size={global_batch_size} is not divisible by the mesh's data axis ({data} devices)."
        )
    hosts = jax.process_count()
    if global_batch_size % hosts:
        raise ValueError(f"config.batch_size={global_batch_size} is not divisible by {hosts} hosts.")
    return global_batch_size // hosts


def describe(mesh: Mesh) -> str:
    """One line: the mesh shape, device kind and host count."""
    kinds = sorted({d.device_kind for d in mesh.devices.flat})
    shape = ", ".join(f"{k}={v}" for k, v in mesh.shape.items())
    return (
        f"mesh ({shape}) over {math.prod(mesh.devices.shape)} device(s) [{', '.join(kinds)}] "
        f"on {jax.process_count()} host(s)"
    )


def initialize_distributed(
    mode: str = "auto",
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Joins this process to a multi-host job; returns whether jax.distributed started.

    ``mode``: 'off' (one process), 'on' (always; the cluster is detected from the
    environment: Cloud TPU VM metadata, SLURM, Open MPI, Kubernetes) or 'auto' (on when
    a coordinator address is given, by argument or $JAX_COORDINATOR_ADDRESS, or when
    SLURM runs more than one task). Missing ``num_processes``/``process_id`` are read
    from $JAX_NUM_PROCESSES/$JAX_PROCESS_ID. Must run before anything touches a device.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"--distributed={mode!r}: use 'auto', 'on' or 'off'.")
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1") or 1)
    if mode == "off" or (mode == "auto" and coordinator_address is None and slurm_tasks <= 1):
        return False
    if coordinator_address is not None and (num_processes is None or process_id is None):
        raise ValueError(
            f"coordinator address {coordinator_address!r} given without --num_processes/--process_id "
            "(or $JAX_NUM_PROCESSES/$JAX_PROCESS_ID): set both for every process."
        )
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True
