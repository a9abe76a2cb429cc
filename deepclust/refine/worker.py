"""The IDEC refinement function that runs on every TorchDistributor rank.

Each rank keeps its shard of the training snapshot in memory, because the
target ``p`` belongs to a row. A refresh computes ``q`` on every clean row of
the shard, and each batch reads the target of its own rows. Cluster
frequencies, sizes and the count of changed assignments are summed across
the ranks, so every rank builds the same target normalisation and takes the
same decision to stop. DDP keeps the encoder and the centroids equal.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from deepclust.models.base import ModelSpec, load_autoencoder, state_dict_to_bytes
from deepclust.read.shards import ShardReader
from deepclust.refine.idec import (
    ClusteringModel,
    balance_penalty,
    kl_to_target,
    target_distribution,
)
from deepclust.train.augment import augment_images
from deepclust.train.worker import init_rank, run_on_rank

_logger = logging.getLogger("deepclust.refine")

# Rows per forward pass when a refresh computes q over the whole shard.
REFRESH_ROWS = 2048


def refine_on_rank(request: dict) -> dict:
    """Refine the encoder and centroids on this rank with IDEC.

    Parameters
    ----------
    request : dict
        Built by :func:`deepclust.refine.distributed.refine_clusters`: keys
        ``shards``, ``spec``, ``weights`` (pre-trained state dict bytes),
        ``centroids`` (k lists), ``settings`` (the ``train`` config as a dict,
        for the device and the augmentation), ``refine`` (the ``refine``
        config as a dict), ``image_shape``, ``seed`` and ``error_dir``.

    Returns
    -------
    dict
        ``weights``, ``centroids``, ``history`` (one dict per target refresh),
        ``batches``, ``stopped`` (``"tolerance"`` or ``"max_epochs"``),
        ``seconds`` and ``backend``. Every rank returns the same values.
    """
    return run_on_rank(_refine, request)


def _refine(request: dict, rank: int) -> dict:
    settings, refine = request["settings"], request["refine"]
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device, backend = init_rank(settings, rank)
    seed = request["seed"]
    torch.manual_seed(seed)

    spec = ModelSpec.from_json(request["spec"])
    model = load_autoencoder(spec, request["weights"]).to(device)
    head = ClusteringModel(model, request["centroids"], refine["alpha"]).to(device)
    k = head.centroids.shape[0]
    ddp = DistributedDataParallel(
        head, device_ids=[device] if device.type == "cuda" else None
    )
    optimizer = torch.optim.Adam(ddp.parameters(), lr=refine["learning_rate"])

    reader = ShardReader(request["shards"], rank, world_size, 1)
    if reader.rows == 0:
        raise RuntimeError(
            f"Rank {rank} of {world_size} received no rows for refinement; the "
            f"snapshot has rows per rank {reader.rows_per_rank}."
        )
    rows = reader.read_all()
    total_rows = sum(reader.rows_per_rank)
    # Every rank takes the same number of steps per epoch, so that the
    # refreshes, which are collective, line up; ranks with fewer rows wrap.
    rank_batch = max(1, -(-refine["batch_size"] // world_size))
    steps_per_epoch = -(-max(reader.rows_per_rank) // rank_batch)
    max_steps = refine["max_epochs"] * steps_per_epoch
    starving_below = refine["starving_fraction"] * total_rows / k

    shuffle = np.random.default_rng(seed * 1000 + rank)
    augment = torch.Generator().manual_seed(seed * 1000 + rank + 1)
    image_shape = request["image_shape"]
    # Running sums since the last refresh: KL, reconstruction, balance, batches.
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    history: list[dict] = []
    previous = order = target = None
    stopped, step = "max_epochs", 0
    started = time.perf_counter()
    while True:
        if step % refine["update_interval"] == 0 or step >= max_steps:
            q = _soft_assign_rows(head, rows, device)
            frequency = q.sum(dim=0)
            dist.all_reduce(frequency)
            target = target_distribution(q, frequency)
            current = q.argmax(dim=1)
            record = _refresh_record(current, previous, sums, k, step, total_rows)
            record["starving"] = [
                c for c, size in enumerate(record["sizes"]) if size < starving_below
            ]
            history.append(record)
            if rank == 0:
                _log_refresh(record, steps_per_epoch)
            sums.zero_()
            if previous is not None and record["changed"] < refine["tol"]:
                stopped = "tolerance"
                break
            if step >= max_steps:
                break
            previous = current
            head.train()

        position = step % steps_per_epoch
        if position == 0:
            order = _epoch_order(len(rows), steps_per_epoch * rank_batch, shuffle)
        index = order[position * rank_batch : (position + 1) * rank_batch]
        x = model.batch_from_arrow(rows.take(pa.array(index)))
        x = augment_images(
            x,
            image_shape,
            settings["shift_pixels"],
            settings["rotation_degrees"],
            augment,
        ).to(device, non_blocking=True)
        q_batch, reconstruction = ddp(x)
        kl = kl_to_target(target[torch.from_numpy(index).to(device)], q_batch)
        reconstruction_loss = model.reconstruction_loss(x, reconstruction)
        balance = balance_penalty(q_batch)
        loss = kl + refine["gamma"] * reconstruction_loss
        if refine["balance_weight"]:
            loss = loss + refine["balance_weight"] * balance
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        one = torch.ones((), device=device)
        sums += torch.stack([kl, reconstruction_loss, balance, one]).detach().double()
        step += 1

    model.to("cpu")
    return {
        "weights": state_dict_to_bytes(model),
        "centroids": head.centroids.detach().cpu().double().tolist(),
        "history": history,
        "batches": step,
        "stopped": stopped,
        "seconds": time.perf_counter() - started,
        "backend": backend,
    }


@torch.no_grad()
def _soft_assign_rows(head: ClusteringModel, rows: pa.Array, device) -> torch.Tensor:
    """Return ``q`` of every row, computed on the clean inputs in eval mode."""
    head.eval()
    model = head.autoencoder
    parts = []
    for start in range(0, len(rows), REFRESH_ROWS):
        x = model.batch_from_arrow(rows.slice(start, REFRESH_ROWS))
        parts.append(head.assign(x.to(device)))
    return torch.cat(parts)


def _epoch_order(rows: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``length`` row positions: shuffled passes over the rows, cut."""
    passes = -(-length // rows)
    return np.concatenate([rng.permutation(rows) for _ in range(passes)])[:length]


def _refresh_record(current, previous, sums, k, step, total_rows) -> dict:
    """Sum this refresh's figures over the ranks and return them as a dict."""
    device = current.device
    sizes = torch.bincount(current, minlength=k).double()
    changed = torch.zeros(1, dtype=torch.float64, device=device)
    if previous is not None:
        changed[0] = float((current != previous).sum())
    figures = torch.cat([sizes, changed, sums])
    dist.all_reduce(figures)
    sizes = figures[:k].long().tolist()
    batches = float(figures[-1])
    mean = (figures[k + 1 : k + 4] / batches).tolist() if batches else [None] * 3
    return {
        "batch": step,
        "changed": float(figures[k]) / total_rows if previous is not None else None,
        "kl": mean[0],
        "reconstruction": mean[1],
        "balance": mean[2],
        "sizes": sizes,
        "smallest": min(sizes),
        "largest": max(sizes),
    }


def _log_refresh(record: dict, steps_per_epoch: int) -> None:
    changed = record["changed"]
    kl = record["kl"]
    _logger.info(
        "refine: batch %d (epoch %.1f) changed %s, kl %s, cluster sizes %d-%d%s",
        record["batch"],
        record["batch"] / steps_per_epoch,
        "-" if changed is None else f"{changed:.4f}",
        "-" if kl is None else f"{kl:.5f}",
        record["smallest"],
        record["largest"],
        f", starving {record['starving']}" if record["starving"] else "",
    )
