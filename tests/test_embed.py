import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from deepclust.cluster import assign_clusters
from deepclust.embed import embed_parquet, embed_table
from deepclust.embed.files import list_row_groups
from deepclust.models import ModelSpec, build_autoencoder
from deepclust.models.base import state_dict_to_bytes
from deepclust.read import read_feature_table
from deepclust.read.prepare import load_source


def test_embedding_equals_direct_torch(spark, digits_table):
    torch.manual_seed(3)
    spec = ModelSpec("mlp", 64, (32, 16), 5, shift=(0.1,) * 64, scale=(0.5,) * 64)
    model = build_autoencoder(spec).eval()
    df, _ = read_feature_table(spark, digits_table)

    # Small batches make each partition run several forward passes.
    embedded = embed_table(df, spec, state_dict_to_bytes(model), batch_rows=100)
    rows = embedded.orderBy("id").collect()

    features, _ = load_source("digits")
    with torch.no_grad():
        expected = model.embed(torch.from_numpy(features)).numpy()
    assert [row["id"] for row in rows] == list(range(len(features)))
    actual = np.array([row["embedding"] for row in rows], dtype=np.float32)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_assignment_is_nearest_centroid(spark):
    embeddings = spark.createDataFrame(
        [(1, [0.0, 0.1]), (2, [4.9, 5.0]), (3, [10.0, 10.0])],
        "id long, embedding array<float>",
    )
    centroids = np.array([[5.0, 5.0], [0.0, 0.0]])
    rows = {r["id"]: r for r in assign_clusters(embeddings, centroids).collect()}
    assert rows[1]["cluster"] == 1
    assert rows[2]["cluster"] == 0
    assert rows[3]["cluster"] == 0
    assert abs(rows[1]["distance"] - 0.1) < 1e-6
    assert abs(rows[3]["distance"] - np.hypot(5.0, 5.0)) < 1e-6


def test_parquet_embedding_equals_table_embedding(spark, digits_table):
    torch.manual_seed(4)
    spec = ModelSpec("mlp", 64, (32,), 3)
    weights = state_dict_to_bytes(build_autoencoder(spec))
    df, _ = read_feature_table(spark, digits_table)

    from_table = embed_table(df, spec, weights).orderBy("id").collect()
    from_files = embed_parquet(spark, digits_table, spec, weights, batch_rows=50)

    rows = from_files.orderBy("id").collect()
    assert [row["id"] for row in rows] == [row["id"] for row in from_table]
    np.testing.assert_array_equal(
        np.array([row["embedding"] for row in rows]),
        np.array([row["embedding"] for row in from_table]),
    )


def test_parquet_embedding_reads_every_row_group(spark, tmp_path):
    # String ids, double features and several row groups per file.
    path = tmp_path / "table"
    path.mkdir()
    features = np.random.default_rng(0).random((250, 4))
    for part in range(2):
        rows = range(part * 125, (part + 1) * 125)
        table = pa.table(
            {
                "id": pa.array([f"row-{i}" for i in rows]),
                "features": pa.array([features[i].tolist() for i in rows]),
            }
        )
        pq.write_table(table, path / f"part-{part}.parquet", row_group_size=40)
    torch.manual_seed(5)
    spec = ModelSpec("mlp", 4, (8,), 2)
    model = build_autoencoder(spec).eval()

    embedded = embed_parquet(spark, str(path), spec, state_dict_to_bytes(model))

    assert embedded.schema["id"].dataType.simpleString() == "string"
    rows = {row["id"]: row["embedding"] for row in embedded.collect()}
    assert len(rows) == 250
    with torch.no_grad():
        expected = model.embed(torch.from_numpy(features.astype(np.float32))).numpy()
    actual = np.array([rows[f"row-{i}"] for i in range(250)], dtype=np.float32)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_row_groups_listed_per_file(tmp_path):
    table = pa.table({"id": pa.array(range(100)), "features": pa.array([[0.0]] * 100)})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=30)
    pq.write_table(table, tmp_path / "b.parquet", row_group_size=100)
    files = [f"file://{tmp_path}/b.parquet", f"file://{tmp_path}/a.parquet"]

    row_groups = list_row_groups(files)

    assert row_groups == [(files[1], i) for i in range(4)] + [(files[0], 0)]
