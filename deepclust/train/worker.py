"""The training function that runs on every TorchDistributor rank.

TorchDistributor starts one process per rank with ``torchrun``; each imports
this module, so deepclust must be installed where those processes run. A rank
reads its own shard of the training snapshot (:mod:`deepclust.read.shards`),
trains the autoencoder under DDP (gloo on CPU, nccl on GPU) and rank 0 returns
the weights and the loss per epoch.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from deepclust.models.base import ModelSpec, build_autoencoder, state_dict_to_bytes
from deepclust.read.shards import ShardReader
from deepclust.train.augment import augment_images
from deepclust.train.series_augment import add_shifted_copies

_logger = logging.getLogger("deepclust.train")


def train_on_rank(request: dict) -> dict:
    """Train the autoencoder on this rank and return the trained weights.

    Parameters
    ----------
    request : dict
        Built by :func:`deepclust.train.distributed.train_autoencoder`: keys
        ``shards`` (parquet folder), ``spec`` (ModelSpec JSON), ``settings``
        (the ``train`` config as a dict), ``image_shape``, ``seed`` and
        ``error_dir``.

    Returns
    -------
    dict
        ``weights`` (bytes of the state dict), ``losses`` (mean loss per
        epoch), ``rows_per_rank``, ``seconds`` and ``backend``.

    Any exception is also written to ``error_dir/rank-<rank>.txt`` before it
    propagates, because TorchDistributor reports only that training failed.
    """
    return run_on_rank(_train, request)


def run_on_rank(body, request: dict) -> dict:
    """Run ``body(request, rank)`` on this rank, recording any error.

    The traceback goes to ``request["error_dir"]/rank-<rank>.txt`` before the
    error propagates, and the process group is always torn down.
    """
    rank = int(os.environ.get("RANK", "0"))
    try:
        _configure_logging()
        return body(request, rank)
    except BaseException:
        _write_error(request["error_dir"], rank, traceback.format_exc())
        raise
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def init_rank(settings: dict, rank: int) -> tuple[torch.device, str]:
    """Pick this rank's device and join the process group.

    Also makes torch flush subnormal floats to zero in this process.
    Returns the device and the backend: nccl with ``use_gpu`` on a CUDA
    device, gloo on the CPU.
    """
    use_cuda = bool(settings["use_gpu"]) and torch.cuda.is_available()
    # Subnormal floats are slow on CPUs, and training produces them: the
    # MNIST MLP's epochs went from 1.6 s to 2.1 s after about 16 epochs
    # unless they are flushed to zero.
    torch.set_flush_denormal(True)
    if settings["use_gpu"] and not use_cuda:
        raise RuntimeError(
            f"train.use_gpu is true but rank {rank} on {socket.gethostname()} "
            "sees no CUDA device. Set train.use_gpu: false, or give the Spark "
            "tasks GPUs (spark.task.resource.gpu.amount)."
        )
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend)
    return device, backend


def _train(request: dict, rank: int) -> dict:
    settings = request["settings"]
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device, backend = init_rank(settings, rank)
    use_cuda = device.type == "cuda"

    seed = request["seed"]
    torch.manual_seed(seed)
    spec = ModelSpec.from_json(request["spec"])
    model = build_autoencoder(spec).to(device)
    ddp = DistributedDataParallel(model, device_ids=[device] if use_cuda else None)
    optimizer = torch.optim.Adam(
        ddp.parameters(),
        lr=settings["learning_rate"],
        weight_decay=settings["weight_decay"],
    )
    reader = ShardReader(
        request["shards"], rank, world_size, settings["shuffle_buffer_rows"]
    )
    if reader.rows == 0:
        raise RuntimeError(
            f"Rank {rank} of {world_size} received no rows: the training "
            f"snapshot has rows per rank {reader.rows_per_rank}. Lower "
            "train.num_processes or train.shards_per_process, or use a larger "
            "table."
        )
    augment = torch.Generator().manual_seed(seed * 1000 + rank)
    image_shape = request["image_shape"]
    series_shift = settings["series_shift_steps"]

    # train.batch_size is the global batch, split across the ranks, so the
    # number of optimizer steps per epoch does not depend on num_processes.
    rank_batch = max(1, -(-settings["batch_size"] // world_size))
    losses = []
    started = time.perf_counter()
    epochs = settings["epochs"]
    for epoch in range(epochs):
        epoch_started = time.perf_counter()
        totals = torch.zeros(2, dtype=torch.float64, device=device)
        ddp.train()
        # join() lets ranks with fewer batches stop early without a hang.
        with ddp.join():
            batches = reader.arrow_batches(rank_batch, seed + 7919 * epoch + rank)
            for column in batches:
                # A 2-d tensor, or padded series with lengths for the rnn family.
                x = model.batch_from_arrow(column)
                x = augment_images(
                    x,
                    image_shape,
                    settings["shift_pixels"],
                    settings["rotation_degrees"],
                    augment,
                )
                if series_shift:
                    x = add_shifted_copies(x, series_shift, augment)
                x = x.to(device, non_blocking=True)
                code, reconstruction = ddp(x)
                loss = model.training_loss(x, code, reconstruction)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                totals[0] += loss.detach().double() * len(column)
                totals[1] += len(column)
        dist.all_reduce(totals)
        mean_loss = float(totals[0] / totals[1])
        losses.append(mean_loss)
        if rank == 0:
            _logger.info(
                "epoch %d/%d loss %.6f (%.1f s)",
                epoch + 1,
                epochs,
                mean_loss,
                time.perf_counter() - epoch_started,
            )
    # Every rank returns the result: TorchDistributor's run script has each
    # rank write its return value to the same file, so any rank may be read.
    # DDP keeps the weights equal and the losses are all-reduced, so the
    # results agree.
    model.to("cpu")
    return {
        "weights": state_dict_to_bytes(model),
        "losses": losses,
        "rows_per_rank": reader.rows_per_rank,
        "seconds": time.perf_counter() - started,
        "backend": backend,
    }


def _configure_logging():
    # The rank is its own process started by torchrun; without a handler its
    # progress lines would be dropped.
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stdout,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def _write_error(error_dir: str, rank: int, text: str) -> None:
    import pyarrow.fs as pafs

    try:
        fs, base = pafs.FileSystem.from_uri(error_dir)
        fs.create_dir(base, recursive=True)
        with fs.open_output_stream(f"{base}/rank-{rank}.txt") as stream:
            stream.write(text.encode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - the training error matters more
        print(
            f"deepclust: could not record the error of rank {rank}: {exc}",
            file=sys.stderr,
        )
