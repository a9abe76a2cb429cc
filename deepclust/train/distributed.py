"""Driver side of training: snapshot the table, start the ranks, collect errors."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import pyarrow.fs as pafs
from pyspark.ml.torch.distributor import TorchDistributor
from pyspark.sql import DataFrame, SparkSession

from deepclust.config import TrainConfig
from deepclust.errors import TrainingError
from deepclust.models.base import ModelSpec, load_autoencoder
from deepclust.train.worker import train_on_rank

_logger = logging.getLogger(__name__)

# Spark settings that make a barrier stage fail at once, instead of retrying
# for minutes, when the cluster has fewer free task slots than ranks.
BARRIER_FAIL_FAST_CONF = {
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "1",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "1s",
}


@dataclass(frozen=True)
class TrainResult:
    """Outcome of training.

    Attributes
    ----------
    model : Autoencoder
        Trained model on the CPU, in eval mode.
    weights : bytes
        Its state dict, as saved by ``torch.save``.
    losses : list of float
        Mean reconstruction loss per epoch over all ranks.
    rows_per_rank : list of int
    seconds : float
        Time spent in the training loop on rank 0.
    backend : str
        ``"gloo"`` or ``"nccl"``.
    """

    model: object
    weights: bytes
    losses: list
    rows_per_rank: list
    seconds: float
    backend: str


def write_snapshot(features: DataFrame, path: str, num_files: int) -> None:
    """Write the ``features`` column as ``num_files`` parquet files for the ranks.

    Labels never enter the snapshot, so training cannot see them.
    """
    features.select("features").repartition(num_files).write.mode("overwrite").parquet(
        path
    )


def check_task_slots(spark: SparkSession, settings: TrainConfig) -> None:
    """Fail fast when barrier mode requests more ranks than free task slots.

    Raises
    ------
    TrainingError
        If ``num_processes`` exceeds the slots Spark reports.
    """
    if settings.local_mode:
        return
    sc = spark.sparkContext
    jsc = sc._jsc.sc()
    try:
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        slots = int(jsc.maxNumConcurrentTasks(profile))
    except Exception as exc:  # noqa: BLE001 - an internal API; the conf still guards
        _logger.warning("could not count free task slots, relying on Spark: %s", exc)
        return
    if settings.num_processes > slots:
        raise TrainingError(
            f"Invalid train.num_processes {settings.num_processes}: the Spark "
            f"cluster ({sc.master}) has {slots} free task slot(s) for barrier "
            "mode (cores / spark.task.cpus over the live executors). Lower "
            "train.num_processes, add executors, or set train.local_mode: true."
        )


def train_autoencoder(
    spark: SparkSession,
    snapshot_path: str,
    spec: ModelSpec,
    settings: TrainConfig,
    seed: int,
    error_dir: str,
    image_shape: tuple | None = None,
) -> TrainResult:
    """Train an autoencoder on a parquet snapshot with TorchDistributor.

    Parameters
    ----------
    snapshot_path : str
        Qualified URI of the parquet folder written by :func:`write_snapshot`;
        every rank must be able to read it.
    error_dir : str
        Qualified URI where failing ranks leave their traceback.

    Raises
    ------
    TrainingError
        With the real error of the first failed rank.
    """
    request = {
        "shards": pyarrow_uri(snapshot_path),
        "spec": spec.to_json(),
        "settings": dataclasses.asdict(settings),
        "image_shape": tuple(image_shape) if image_shape else None,
        "seed": seed,
        "error_dir": pyarrow_uri(error_dir),
    }
    _logger.info(
        "train: %d process(es), local_mode=%s, use_gpu=%s, %d epochs",
        settings.num_processes,
        settings.local_mode,
        settings.use_gpu,
        settings.epochs,
    )
    output = run_ranks(spark, settings, train_on_rank, request)
    model = load_autoencoder(spec, output["weights"])
    return TrainResult(
        model=model,
        weights=output["weights"],
        losses=list(output["losses"]),
        rows_per_rank=list(output["rows_per_rank"]),
        seconds=float(output["seconds"]),
        backend=output["backend"],
    )


def run_ranks(
    spark: SparkSession,
    settings: TrainConfig,
    function,
    request: dict,
    stage: str = "Training",
):
    """Run ``function(request)`` on ``settings.num_processes`` ranks.

    ``stage`` names the work in error messages, e.g. ``"Refinement"``.

    ``request["error_dir"]`` must be a URI every rank can write; a failing
    rank leaves its traceback there (see
    :func:`deepclust.train.worker.run_on_rank`).

    Returns
    -------
    The value one rank returned.

    Raises
    ------
    TrainingError
        With the real error of the first failed rank, or when the task slots
        or GPU resources do not suffice.
    """
    check_task_slots(spark, settings)
    try:
        distributor = TorchDistributor(
            num_processes=settings.num_processes,
            local_mode=settings.local_mode,
            use_gpu=settings.use_gpu,
        )
    except RuntimeError as exc:
        # TorchDistributor checks the GPU resources of the driver or the tasks.
        raise TrainingError(
            f"Invalid train.use_gpu {settings.use_gpu}: {exc} Set train.use_gpu: "
            "false, or configure GPU resources (spark.driver.resource.gpu.amount "
            "for local_mode, spark.task.resource.gpu.amount otherwise)."
        ) from exc
    try:
        output = distributor.run(function, request)
    except Exception as exc:
        rank_error = read_rank_error(request["error_dir"])
        if rank_error:
            rank, trace = rank_error
            last_line = trace.strip().splitlines()[-1]
            raise TrainingError(
                f"{stage} failed on rank {rank}: {last_line}\n"
                f"Traceback of rank {rank}:\n{trace}"
            ) from exc
        raise TrainingError(
            f"{stage} failed before any rank reported an error: {exc}"
        ) from exc
    if not output:
        raise TrainingError(f"{stage} finished, but the ranks returned no result.")
    return output


def read_rank_error(error_dir: str) -> tuple[int, str] | None:
    """Return ``(rank, traceback)`` of the rank that failed first, or None.

    When one rank fails, the others fail soon after with connection errors, so
    the earliest file contains the cause.
    """
    try:
        fs, base = pafs.FileSystem.from_uri(error_dir)
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except (OSError, ValueError):
        return None
    found = []
    for info in infos:
        name = os.path.basename(info.path)
        if name.startswith("rank-") and name.endswith(".txt"):
            with fs.open_input_stream(info.path) as stream:
                text = stream.read().decode("utf-8", errors="replace")
            found.append((info.mtime_ns or 0, int(name[5:-4]), text))
    if not found:
        return None
    _, rank, text = min(found)
    return rank, text


def pyarrow_uri(uri: str) -> str:
    """Return ``uri`` in the form pyarrow's file systems accept."""
    # Hadoop writes local paths as "file:/abs"; pyarrow wants "file:///abs".
    if uri.startswith("file:/") and not uri.startswith("file:///"):
        return "file:///" + uri[len("file:/") :].lstrip("/")
    return uri
