"""End-to-end runs of the training job on real data, with a real MLflow store."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from deepclust.errors import ConfigError, InputError, TrainingError
from pipelines.train import run_training_job
from tests.conftest import write_config

pytestmark = pytest.mark.slow


def small_config(tmp_path, table, output_path, **sections):
    values = {
        "data": {"path": table},
        "model": {"hidden_dims": [64, 32], "embedding_dim": 8},
        "train": {"epochs": 3, "batch_size": 64, "num_processes": 2},
        "cluster": {"k": 10},
        "output": {"path": str(output_path)},
        "tracking": {"experiment": "tests"},
        "seed": 0,
    }
    for name, updates in sections.items():
        values.setdefault(name, {}).update(updates)
    return write_config(tmp_path / "job.yaml", **values)


def last_run(tracking_uri, experiment="tests"):
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], order_by=["start_time DESC"])[0]


def test_digits_end_to_end(spark, tracking_uri, tmp_path, digits_table):
    output = tmp_path / "out"
    config = small_config(
        tmp_path,
        digits_table,
        output,
        train={"epochs": 25, "shift_pixels": 1},
        data={"image_shape": [1, 8, 8]},
        cluster={"n_init": 2},
    )
    result = run_training_job(spark, config)

    # Chance level for 10 balanced classes is ACC 0.1 and NMI 0.
    assert result.metrics["acc"] > 0.5
    assert result.metrics["nmi"] > 0.5
    assert result.metrics["clusters"] == 10
    assert -1.0 <= result.metrics["silhouette"] <= 1.0

    embeddings = spark.read.parquet(str(output / "embeddings"))
    assignments = spark.read.parquet(str(output / "assignments"))
    centroids = spark.read.parquet(str(output / "centroids"))
    assert embeddings.count() == 1797
    assert assignments.select("id").distinct().count() == 1797
    assert set(assignments.columns) == {"id", "cluster", "distance"}
    assert centroids.count() == 10
    assert sum(r["size"] for r in centroids.collect()) == 1797
    assert sorted(os.listdir(output)) == ["assignments", "centroids", "embeddings"]
    assert not [p for p in os.listdir(tmp_path) if "staging" in p]

    run = last_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_id == result.run_id
    assert run.data.params["train.epochs"] == "25"
    assert run.data.params["model.hidden_dims"] == "(64, 32)"
    history = MlflowClient(tracking_uri).get_metric_history(
        run.info.run_id, "train_loss"
    )
    assert [m.step for m in history] == list(range(1, 26))
    assert history[-1].value < history[0].value
    artifacts = {
        a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)
    } | {
        a.path
        for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id, "model")
    }
    for expected in (
        "loss_curve.png",
        "centroids.json",
        "model/autoencoder.pt",
        "config",
    ):
        assert expected in artifacts


def test_digits_conv_end_to_end(spark, tracking_uri, tmp_path, digits_table):
    output = tmp_path / "out"
    config = small_config(
        tmp_path,
        digits_table,
        output,
        data={"image_shape": [1, 8, 8]},
        model={"family": "conv", "conv_channels": [16, 32], "embedding_dim": 10},
        train={"epochs": 10, "shift_pixels": 1},
    )
    result = run_training_job(spark, config)

    # Chance level for 10 balanced classes is ACC 0.1 and NMI 0.
    assert result.metrics["acc"] > 0.4
    assert result.metrics["nmi"] > 0.4
    assert spark.read.parquet(str(output / "assignments")).count() == 1797

    run = last_run(tracking_uri)
    client = MlflowClient(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.family"] == "conv"
    spec_path = client.download_artifacts(
        run.info.run_id, "model/spec.json", str(tmp_path)
    )
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    assert spec["family"] == "conv"
    assert spec["hidden_dims"] == [16, 32]
    assert spec["input_shape"] == [1, 8, 8]
    for name in ("cluster_samples.png", "reconstructions.png"):
        path = client.download_artifacts(run.info.run_id, name, str(tmp_path))
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_assignments(spark, tracking_uri, tmp_path, iris_table):
    outputs = []
    for name in ("first", "second"):
        config = small_config(
            tmp_path,
            iris_table,
            tmp_path / name,
            model={"hidden_dims": [8], "embedding_dim": 2, "scaling": "standard"},
            train={"epochs": 5, "batch_size": 16},
            cluster={"k": 3},
        )
        run_training_job(spark, config)
        rows = spark.read.parquet(str(tmp_path / name / "assignments")).collect()
        outputs.append(sorted((r["id"], r["cluster"]) for r in rows))
    assert outputs[0] == outputs[1]


def bad_table(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    features = [[0.0, 1.0]] * 9 + [[float("nan"), 1.0]]
    pq.write_table(
        pa.table(
            {
                "id": pa.array(range(10), pa.int64()),
                "features": pa.array(features, pa.list_(pa.float32())),
            }
        ),
        folder / "part-0.parquet",
    )
    return str(folder)


@pytest.mark.parametrize(
    "case, error, pattern",
    [
        ("nan", InputError, r"null, NaN or infinite.*row id 9"),
        ("missing path", InputError, r"Cannot read the feature table"),
        (
            "k too large",
            InputError,
            r"cluster.k: expected at most the number of rows \(150\)",
        ),
        ("unknown key", ConfigError, r"Unknown config key 'train.epoks'"),
        ("out of range", ConfigError, r"config key train.batch_size.*got 0"),
        ("image shape", InputError, r"data.image_shape: \[1, 2, 3\] has 6 values"),
        (
            "image shape not positive",
            ConfigError,
            r"config key data.image_shape: expected a list of 3 integers >= 1.*"
            r"got \[1, 0, 4\]",
        ),
        (
            "conv image too small",
            InputError,
            r"data.image_shape \[1, 2, 2\] for 2 downsampling blocks.*"
            r"Use 1 or fewer blocks \(entries of model.conv_channels\)",
        ),
        (
            "conv without image shape",
            InputError,
            r"model.family 'conv' without data.image_shape.*Set data.image_shape",
        ),
    ],
)
def test_bad_input_fails_run_and_writes_nothing(
    spark, tracking_uri, tmp_path, iris_table, case, error, pattern
):
    output = tmp_path / "out"
    table = {"nan": bad_table(tmp_path), "missing path": str(tmp_path / "no")}.get(
        case, iris_table
    )
    sections = {
        "k too large": {"cluster": {"k": 151}},
        "unknown key": {"train": {"epoks": 1}},
        "out of range": {"train": {"batch_size": 0}},
        "image shape": {"data": {"image_shape": [1, 2, 3]}},
        "image shape not positive": {"data": {"image_shape": [1, 0, 4]}},
        "conv image too small": {
            "data": {"image_shape": [1, 2, 2]},
            "model": {"family": "conv", "conv_channels": [8, 8]},
        },
        "conv without image shape": {"model": {"family": "conv"}},
    }.get(case, {})
    config = small_config(tmp_path, table, output, **sections)

    with pytest.raises(error, match=pattern):
        run_training_job(spark, config)

    assert not output.exists()
    assert not [p for p in os.listdir(tmp_path) if "staging" in p]
    run = last_run(tracking_uri)
    assert run.info.status == "FAILED"
    assert "deepclust.error" in run.data.tags


def test_existing_output_kept_on_failure(spark, tracking_uri, tmp_path, iris_table):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("earlier result")
    config = small_config(
        tmp_path, bad_table(tmp_path), output, output={"overwrite": True}
    )
    with pytest.raises(InputError):
        run_training_job(spark, config)
    assert (output / "keep.txt").read_text() == "earlier result"


def test_existing_output_needs_overwrite(spark, tracking_uri, tmp_path, iris_table):
    output = tmp_path / "out"
    output.mkdir()
    config = small_config(tmp_path, iris_table, output)
    with pytest.raises(InputError, match=r"already exists.*output.overwrite: true"):
        run_training_job(spark, config)


@pytest.mark.parametrize("where", ["table", "parent", "inside"])
def test_output_overlapping_table_rejected(
    spark, tracking_uri, tmp_path, iris_table, where
):
    table = tmp_path / "tables" / "iris"
    shutil.copytree(iris_table, table)
    before = sorted(os.listdir(table))
    output = {"table": table, "parent": table.parent, "inside": table / "out"}[where]
    config = small_config(
        tmp_path, str(table), output, output={"overwrite": True}, cluster={"k": 3}
    )

    with pytest.raises(
        InputError, match=r"Invalid output.path: expected a folder outside data.path"
    ):
        run_training_job(spark, config)

    assert sorted(os.listdir(table)) == before
    assert last_run(tracking_uri).info.status == "FAILED"


def test_more_processes_than_rows_rejected(spark, tracking_uri, tmp_path):
    table = tmp_path / "tiny"
    table.mkdir()
    pq.write_table(
        pa.table(
            {
                "id": pa.array(range(3), pa.int64()),
                "features": pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float32())),
            }
        ),
        table / "part-0.parquet",
    )
    config = small_config(
        tmp_path,
        str(table),
        tmp_path / "out",
        cluster={"k": 2},
        train={"num_processes": 4},
    )

    with pytest.raises(InputError, match=r"train.num_processes: .*\(3\).*got 4"):
        run_training_job(spark, config)

    assert last_run(tracking_uri).info.status == "FAILED"


def test_sigterm_fails_run_and_cleans_staging(tracking_uri, tmp_path, iris_table):
    output = tmp_path / "out"
    config = small_config(
        tmp_path,
        iris_table,
        output,
        train={"epochs": 5000, "batch_size": 16, "num_processes": 1},
        cluster={"k": 3},
        registry={"enabled": False},
    )
    job = subprocess.Popen(
        [sys.executable, "-m", "deepclust", "train", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in job.stdout:
            if "epoch 2/" in line:
                break
        job.send_signal(signal.SIGTERM)
        remaining, _ = job.communicate(timeout=120)
    finally:
        job.kill()

    assert job.returncode == 143
    assert "Stopped by SIGTERM" in remaining
    assert not output.exists()
    assert not [p for p in os.listdir(tmp_path) if "staging" in p]
    run = last_run(tracking_uri)
    assert run.info.status == "FAILED"
    assert "SIGTERM" in run.data.tags["deepclust.error"]


def test_unsupported_tracking_uri_rejected(spark, tmp_path, iris_table):
    config = small_config(
        tmp_path, iris_table, tmp_path / "out", tracking={"uri": "nonsense://x"}
    )

    with pytest.raises(InputError, match=r"Invalid tracking URI: .*'nonsense://x'"):
        run_training_job(spark, config)

    assert not (tmp_path / "out").exists()


def test_gpu_request_without_gpu(spark, tracking_uri, tmp_path, iris_table):
    config = small_config(
        tmp_path,
        iris_table,
        tmp_path / "out",
        train={"use_gpu": True},
        cluster={"k": 3},
    )
    with pytest.raises(TrainingError, match=r"train.use_gpu.*Set train.use_gpu: false"):
        run_training_job(spark, config)
    assert last_run(tracking_uri).info.status == "FAILED"


def test_too_many_processes_fail_fast(spark, tracking_uri, tmp_path, iris_table):
    config = small_config(
        tmp_path,
        iris_table,
        tmp_path / "out",
        train={"num_processes": 3, "local_mode": False},
        cluster={"k": 3},
    )
    with pytest.raises(TrainingError, match=r"num_processes 3.*2 free task slot"):
        run_training_job(spark, config)


def test_tracking_overrides_apply(spark, tracking_uri, tmp_path):
    config = small_config(tmp_path, bad_table(tmp_path), tmp_path / "out")
    with pytest.raises(InputError):
        run_training_job(spark, config, ["tracking.experiment=overridden"])
    assert last_run(tracking_uri, "overridden").info.status == "FAILED"
