import numpy as np
import torch

from deepclust.cluster import assign_clusters
from deepclust.embed import embed_table
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
