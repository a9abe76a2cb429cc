"""IDEC refinement: its losses, augmentation, the ranks and the training job."""

import dataclasses
import logging

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from deepclust.config import RefineConfig, TrainConfig
from deepclust.models import ModelSpec, build_autoencoder
from deepclust.models.base import state_dict_to_bytes
from deepclust.refine import (
    balance_penalty,
    kl_to_target,
    soft_assignments,
    target_distribution,
)
from deepclust.refine.distributed import refine_clusters
from deepclust.storage import qualify
from deepclust.train.augment import augment_images, random_rotation
from pipelines.train import _log_refinement, run_training_job
from tests.conftest import write_config


def test_soft_assignments_prefer_nearest():
    embedding = torch.tensor([[0.0, 0.0], [10.0, 0.0], [4.0, 0.0]])
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    q = soft_assignments(embedding, centroids)
    assert torch.allclose(q.sum(dim=1), torch.ones(3))
    assert q.argmax(dim=1).tolist() == [0, 1, 0]
    # Student-t with one degree of freedom: 1 / (1 + d^2), normalised.
    assert q[2, 0] == pytest.approx((1 / 17) / (1 / 17 + 1 / 37))


def test_target_divides_by_cluster_frequency():
    q = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.2, 0.8]])
    p = target_distribution(q, q.sum(dim=0))
    assert torch.allclose(p.sum(dim=1), torch.ones(3))
    assert p[0, 0] > q[0, 0]
    assert p[2, 1] > q[2, 1]
    # The global frequency, not the rows at hand, sets the normalisation.
    other = target_distribution(q[:1], torch.tensor([1.0, 0.1]))
    assert other[0, 1] > other[0, 0]


def test_kl_zero_only_at_target():
    q = torch.tensor([[0.7, 0.3], [0.1, 0.9]])
    assert float(kl_to_target(q, q)) == pytest.approx(0.0, abs=1e-7)
    assert float(kl_to_target(target_distribution(q, q.sum(0)), q)) > 0


def test_balance_penalty_grows_when_piled():
    even = torch.full((4, 2), 0.5)
    piled = torch.tensor([[0.9, 0.1]] * 4)
    assert float(balance_penalty(even)) == pytest.approx(0.0, abs=1e-7)
    assert float(balance_penalty(piled)) > 0.3


def test_rotation_turns_about_centre():
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 8] = 1.0
    flat = image.reshape(1, -1)
    assert torch.equal(random_rotation(flat, (1, 9, 9), 0.0), flat)
    # The bright pixel stays on its circle around the centre, at angles that
    # differ from image to image.
    turned = random_rotation(flat.repeat(200, 1), (1, 9, 9), 90.0).reshape(200, 9, 9)
    centre_distance = []
    for picture in turned:
        row, col = divmod(int(picture.argmax()), 9)
        centre_distance.append(((row - 4) ** 2 + (col - 4) ** 2) ** 0.5)
    assert min(centre_distance) > 3.0
    assert len({int(p.argmax()) for p in turned}) > 3


def test_augmentation_skips_non_images():
    x = torch.rand(4, 6)
    assert torch.equal(augment_images(x, None, 2, 10.0), x)


def write_blobs(folder, sizes, dim=6, spread=0.3, seed=0, files=4):
    """Write Gaussian blobs as parquet files; return (path, features, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(len(sizes), dim))
    features = np.concatenate(
        [
            centre + spread * rng.normal(size=(n, dim))
            for centre, n in zip(centres, sizes, strict=True)
        ]
    ).astype(np.float32)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(features))
    features, labels = features[order], labels[order]
    folder.mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(features)), files)):
        table = pa.table(
            {
                "id": pa.array(part.astype(np.int64)),
                "features": pa.array(features[part].tolist(), pa.list_(pa.float32())),
                "label": pa.array(labels[part].astype(np.int64)),
            }
        )
        pq.write_table(table, folder / f"part-{index}.parquet")
    return str(folder), features, labels


def fresh_model(dim, embedding_dim=3, seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec("mlp", dim, (16,), embedding_dim)
    model = build_autoencoder(spec)
    return spec, model


def run_refine(spark, tmp_path, name, snapshot, spec, model, centroids, **changes):
    processes = changes.pop("num_processes", 2)
    train = dataclasses.replace(TrainConfig(), num_processes=processes)
    refine = dataclasses.replace(
        RefineConfig(method="idec"),
        **{"batch_size": 32, "update_interval": 10, "max_epochs": 15, **changes},
    )
    return refine_clusters(
        spark,
        qualify(spark, snapshot),
        spec,
        state_dict_to_bytes(model),
        centroids,
        train,
        refine,
        seed=0,
        error_dir=qualify(spark, str(tmp_path / f"errors-{name}")),
    )


@pytest.mark.slow
def test_one_and_two_processes_agree(spark, tmp_path):
    snapshot, features, labels = write_blobs(tmp_path / "snap", [60, 60, 60, 60])
    spec, model = fresh_model(features.shape[1])
    with torch.no_grad():
        embedding = model.embed(torch.from_numpy(features)).numpy()
    centroids = KMeans(4, n_init=10, random_state=0).fit(embedding).cluster_centers_

    results = {
        n: run_refine(
            spark, tmp_path, str(n), snapshot, spec, model, centroids, num_processes=n
        )
        for n in (1, 2)
    }
    assignments = {}
    for n, result in results.items():
        with torch.no_grad():
            refined = result.model.embed(torch.from_numpy(features))
        q = soft_assignments(refined, torch.from_numpy(result.centroids).float())
        assignments[n] = q.argmax(dim=1).numpy()
        assert result.history[0]["changed"] is None
        assert sum(result.history[-1]["sizes"]) == len(features)
        assert result.batches > 0

    assert adjusted_rand_score(assignments[1], assignments[2]) > 0.95
    assert adjusted_rand_score(labels, assignments[2]) > 0.95
    # Both moved the centroids away from KMeans by a similar amount.
    moved = {n: np.linalg.norm(r.centroids - centroids) for n, r in results.items()}
    assert moved[1] > 0
    assert moved[2] > 0
    assert moved[1] == pytest.approx(moved[2], rel=0.5)


@pytest.mark.slow
def test_empty_cluster_is_reported(spark, tracking_uri, tmp_path, caplog):
    snapshot, features, _ = write_blobs(tmp_path / "snap", [80, 80])
    spec, model = fresh_model(features.shape[1])
    with torch.no_grad():
        embedding = model.embed(torch.from_numpy(features)).numpy()
    labels = KMeans(2, n_init=10, random_state=0).fit_predict(embedding)
    centroids = [embedding[labels == c].mean(axis=0) for c in range(2)]
    # A third centroid far from every row never wins a row.
    centroids.append(embedding.mean(axis=0) + 1000.0)
    result = run_refine(
        spark, tmp_path, "starve", snapshot, spec, model, np.array(centroids)
    )
    last = result.history[-1]
    assert last["sizes"][2] == 0
    assert last["smallest"] == 0
    assert last["starving"] == [2]

    with caplog.at_level(logging.WARNING, logger="deepclust.pipeline"):
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment("refine-history")
        with mlflow.start_run() as run:
            _log_refinement(result)
    assert "cluster(s) [2] end with fewer rows" in caplog.text
    logged = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert logged["refine_starving_clusters"] == 1
    assert logged["refine_smallest_cluster"] == 0


@pytest.mark.slow
def test_unbalanced_blobs_keep_sizes(spark, tracking_uri, tmp_path):
    table, _, _ = write_blobs(tmp_path / "table", [360, 40], dim=8, files=2)
    config = write_config(
        tmp_path / "job.yaml",
        data={"path": table},
        model={"hidden_dims": [32], "embedding_dim": 4, "scaling": "standard"},
        train={"epochs": 10, "batch_size": 64, "num_processes": 2},
        cluster={"k": 2, "n_init": 3},
        refine={
            "method": "idec",
            "balance_weight": 0.0,
            "batch_size": 64,
            "update_interval": 10,
            "max_epochs": 20,
        },
        output={"path": str(tmp_path / "out")},
        tracking={"experiment": "tests"},
        registry={"model_name": "blobs-refined"},
        seed=0,
    )
    result = run_training_job(spark, config)

    centroids = spark.read.parquet(f"{result.output_path}/centroids")
    assert sorted(r["size"] for r in centroids.collect()) == [40, 360]
    assert result.metrics["acc"] == 1.0
    assert result.metrics["kmeans_acc"] == 1.0
    assert result.metrics["empty_clusters"] == 0
    run = mlflow.MlflowClient(tracking_uri).get_run(result.run_id)
    assert run.data.tags["deepclust.refine_stopped"] in ("tolerance", "max_epochs")
    history = mlflow.MlflowClient(tracking_uri).get_metric_history(
        result.run_id, "refine_changed"
    )
    assert len(history) >= 1
    artifacts = [
        a.path
        for a in mlflow.MlflowClient(tracking_uri).list_artifacts(
            result.run_id, "model"
        )
    ]
    assert "model/pretrained.pt" in artifacts

    # The registered model assigns with the refined encoder and centroids.
    registered = mlflow.pyfunc.load_model("models:/blobs-refined/1")
    table = spark.read.parquet(table).toPandas()
    predicted = registered.predict(table[["id", "features"]])
    assigned = {
        row["id"]: row["cluster"]
        for row in spark.read.parquet(f"{result.output_path}/assignments").collect()
    }
    assert dict(zip(predicted["id"], predicted["cluster"], strict=True)) == assigned


@pytest.mark.parametrize("key", ["shift_pixels", "rotation_degrees"])
def test_augmentation_needs_image_shape(key):
    from deepclust.config import parse_config
    from deepclust.errors import InputError
    from deepclust.read import TableSummary
    from pipelines.train import check_table_fits_config

    config = parse_config(
        {"data": {"path": "t"}, "output": {"path": "o"}, "train": {key: 2}}
    )
    summary = TableSummary(rows=100, feature_dim=64, has_label=False)
    with pytest.raises(InputError, match=rf"train.{key}: 2 needs data.image_shape"):
        check_table_fits_config(config, summary)
