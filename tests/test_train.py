import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from deepclust.config import TrainConfig
from deepclust.errors import TrainingError
from deepclust.models import ModelSpec
from deepclust.read.shards import ShardReader
from deepclust.storage import qualify
from deepclust.train import train_autoencoder

pytestmark = pytest.mark.slow


def write_shards(folder, rows_per_file, dim, files=3):
    folder.mkdir()
    start = 0
    for index in range(files):
        features = [[float(start + i)] * dim for i in range(rows_per_file)]
        pq.write_table(
            pa.table({"features": pa.array(features, pa.list_(pa.float32()))}),
            folder / f"part-{index}.parquet",
        )
        start += rows_per_file
    return str(folder)


def test_shards_split_files_between_ranks(tmp_path):
    path = write_shards(tmp_path / "snap", rows_per_file=5, dim=2, files=3)
    first = ShardReader(path, 0, 2, shuffle_buffer_rows=100)
    second = ShardReader(path, 1, 2, shuffle_buffer_rows=100)
    assert first.rows_per_rank == [10, 5]
    rows = [r[0] for b in first.batches(4, seed=0) for r in b] + [
        r[0] for b in second.batches(4, seed=0) for r in b
    ]
    assert sorted(rows) == [float(i) for i in range(15)]


def test_shard_order_depends_on_seed(tmp_path):
    path = write_shards(tmp_path / "snap", rows_per_file=20, dim=1, files=2)
    reader = ShardReader(path, 0, 1, shuffle_buffer_rows=100)
    first = [b.tolist() for b in reader.batches(8, seed=1)]
    again = [b.tolist() for b in reader.batches(8, seed=1)]
    other = [b.tolist() for b in reader.batches(8, seed=2)]
    assert first == again
    assert first != other


def test_shard_within_buffer_is_read_once(tmp_path):
    path = write_shards(tmp_path / "snap", rows_per_file=20, dim=1, files=2)
    reader = ShardReader(path, 0, 1, shuffle_buffer_rows=40)
    first = [b.tolist() for b in reader.batches(8, seed=1)]
    for part in (tmp_path / "snap").iterdir():
        part.unlink()

    again = [b.tolist() for b in reader.batches(8, seed=1)]
    other = [r[0] for b in reader.batches(8, seed=2) for r in b]

    assert again == first
    assert sorted(other) == [float(i) for i in range(40)]


def test_shard_above_buffer_is_read_each_pass(tmp_path):
    path = write_shards(tmp_path / "snap", rows_per_file=20, dim=1, files=2)
    reader = ShardReader(path, 0, 1, shuffle_buffer_rows=39)
    list(reader.batches(8, seed=1))
    for part in (tmp_path / "snap").iterdir():
        part.unlink()

    with pytest.raises(FileNotFoundError):
        list(reader.batches(8, seed=1))


def test_rank_error_reaches_driver(spark, tmp_path):
    # The snapshot rows have 3 values but the model expects 5, so every rank
    # fails inside its forward pass.
    snapshot = write_shards(tmp_path / "snap", rows_per_file=8, dim=3, files=2)
    spec = ModelSpec("mlp", 5, (4,), 2)
    settings = dataclasses.replace(TrainConfig(), epochs=1, num_processes=2)
    with pytest.raises(TrainingError) as info:
        train_autoencoder(
            spark,
            qualify(spark, snapshot),
            spec,
            settings,
            seed=0,
            error_dir=qualify(spark, str(tmp_path / "errors")),
        )
    message = str(info.value)
    assert message.startswith("Training failed on rank ")
    assert "RuntimeError: The size of tensor a (3) must match" in message
    assert "Traceback" in message


def test_two_ranks_train_and_agree(spark, tmp_path):
    torch.manual_seed(0)
    snapshot = write_shards(tmp_path / "snap", rows_per_file=16, dim=4, files=4)
    spec = ModelSpec("mlp", 4, (8,), 2, shift=(20.0,) * 4, scale=(20.0,) * 4)
    settings = dataclasses.replace(TrainConfig(), epochs=4, batch_size=8)
    result = train_autoencoder(
        spark,
        qualify(spark, snapshot),
        spec,
        settings,
        seed=0,
        error_dir=qualify(spark, str(tmp_path / "errors")),
    )
    assert result.rows_per_rank == [32, 32]
    assert len(result.losses) == 4
    assert result.losses[-1] < result.losses[0]
    assert result.backend == "gloo"
