import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepclust.errors import InputError
from deepclust.read import read_feature_table
from deepclust.read.prepare import load_source, read_idx, to_arrow_table


def write_table(tmp_path, columns, name="table"):
    folder = tmp_path / name
    folder.mkdir()
    pq.write_table(pa.table(columns), folder / "part-0.parquet")
    return str(folder)


def good_columns(n=4, dim=3):
    return {
        "id": pa.array(range(n), pa.int64()),
        "features": pa.array(
            [[float(i)] * dim for i in range(n)], pa.list_(pa.float32())
        ),
        "label": pa.array([i % 2 for i in range(n)], pa.int64()),
    }


def test_good_table_summary(spark, tmp_path):
    df, summary = read_feature_table(spark, write_table(tmp_path, good_columns()))
    assert summary.rows == 4
    assert summary.feature_dim == 3
    assert summary.has_label
    assert df.schema["features"].dataType.simpleString() == "array<float>"


def test_double_features_accepted(spark, tmp_path):
    columns = good_columns()
    columns["features"] = pa.array([[1.0, 2.0]] * 4, pa.list_(pa.float64()))
    _, summary = read_feature_table(spark, write_table(tmp_path, columns))
    assert summary.feature_dim == 2


def test_missing_path(spark, tmp_path):
    with pytest.raises(InputError, match=r"Cannot read the feature table at .*nowhere"):
        read_feature_table(spark, str(tmp_path / "nowhere"))


def test_empty_table_folder_rejected(spark, tmp_path):
    (tmp_path / "empty").mkdir()

    with pytest.raises(
        InputError, match=r"empty': the folder contains no parquet files"
    ):
        read_feature_table(spark, str(tmp_path / "empty"))


def test_missing_column(spark, tmp_path):
    columns = good_columns()
    del columns["features"]
    with pytest.raises(
        InputError, match=r"Missing column 'features'.*deepclust prepare"
    ):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_wrong_feature_type(spark, tmp_path):
    columns = good_columns()
    columns["features"] = pa.array(["a", "b", "c", "d"])
    with pytest.raises(
        InputError, match=r"Invalid type of column 'features'.*array<float>.*got string"
    ):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_wrong_id_type(spark, tmp_path):
    columns = good_columns()
    columns["id"] = pa.array([0.5, 1.5, 2.5, 3.5])
    with pytest.raises(InputError, match=r"Invalid type of column 'id'.*got double"):
        read_feature_table(spark, write_table(tmp_path, columns))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None])
def test_bad_value_names_row(spark, tmp_path, bad):
    columns = good_columns()
    columns["features"] = pa.array(
        [[0.0, 0.0], [1.0, bad], [2.0, 2.0], [3.0, 3.0]], pa.list_(pa.float32())
    )
    with pytest.raises(InputError, match=r"null, NaN or infinite.*row id 1\b"):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_null_features_names_row(spark, tmp_path):
    columns = good_columns()
    columns["features"] = pa.array([[0.0], None, [2.0], [3.0]], pa.list_(pa.float32()))
    with pytest.raises(InputError, match=r"'features' is null in 1 row.*row id 1\b"):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_ragged_arrays_name_both_rows(spark, tmp_path):
    columns = good_columns()
    columns["features"] = pa.array(
        [[0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], pa.list_(pa.float32())
    )
    with pytest.raises(
        InputError,
        match=r"different lengths.*row id \d has 2 values and row id 1 has 3",
    ):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_empty_table(spark, tmp_path):
    columns = {
        "id": pa.array([], pa.int64()),
        "features": pa.array([], pa.list_(pa.float32())),
    }
    with pytest.raises(InputError, match=r"is empty: expected at least one row"):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_duplicate_ids(spark, tmp_path):
    columns = good_columns()
    columns["id"] = pa.array([0, 1, 1, 3], pa.int64())
    with pytest.raises(InputError, match=r"id 1 occurs 2 times"):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_null_id(spark, tmp_path):
    columns = good_columns()
    columns["id"] = pa.array([0, None, 2, 3], pa.int64())
    with pytest.raises(InputError, match=r"'id' .* 1 null value"):
        read_feature_table(spark, write_table(tmp_path, columns))


def test_prepare_iris_and_digits(spark, iris_table, digits_table):
    _, iris = read_feature_table(spark, iris_table)
    _, digits = read_feature_table(spark, digits_table)
    assert (iris.rows, iris.feature_dim) == (150, 4)
    assert (digits.rows, digits.feature_dim) == (1797, 64)


def test_prepared_ids_are_stable(spark, digits_table):
    df, _ = read_feature_table(spark, digits_table)
    features, labels = load_source("digits")
    rows = df.orderBy("id").limit(3).collect()
    for row in rows:
        np.testing.assert_allclose(row["features"], features[row["id"]], rtol=1e-6)
        assert row["label"] == labels[row["id"]]


def test_mnist_idx_files():
    features, labels = load_source("mnist", "data/mnist")
    assert features.shape == (10000, 784)
    assert features.min() >= 0.0
    assert features.max() <= 1.0
    assert np.bincount(labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


def test_truncated_idx_rejected(tmp_path):
    data = open("data/mnist/t10k-labels-idx1-ubyte.gz", "rb").read()
    import gzip

    raw = gzip.decompress(data)[:-10]
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(InputError, match=r"truncated or corrupted"):
        read_idx(str(path))


def test_bad_idx_magic(tmp_path):
    path = tmp_path / "bad-idx"
    path.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(InputError, match=r"expected a magic number"):
        read_idx(str(path))


def test_arrow_table_layout():
    table = to_arrow_table(np.ones((3, 2), np.float32), np.array([0, 1, 1]))
    assert table.column_names == ["id", "features", "label"]
    assert table.column("features").to_pylist() == [[1.0, 1.0]] * 3


def test_file_that_is_not_parquet(spark, tmp_path):
    path = tmp_path / "notparquet.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"Cannot read the feature table .*notparquet"):
        read_feature_table(spark, str(path))
