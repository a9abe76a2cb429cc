"""Series tables: .ts parsing, table checks, the rnn family and its loss."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from deepclust.embed import embed_table
from deepclust.errors import InputError
from deepclust.models import ModelSpec, build_autoencoder
from deepclust.models.base import state_dict_to_bytes
from deepclust.models.rnn import SeriesBatch, downsample, series_batch_from_arrow
from deepclust.read import read_feature_table
from deepclust.read.ucr import load_series, read_ts, read_tsv, series_arrow_table
from deepclust.train.series_augment import add_shifted_copies

SERIES = pa.list_(pa.list_(pa.float32()))

UNIVARIATE = """# a comment
@problemName Tiny
@timeStamps false
@univariate true
@equalLength true
@seriesLength 3
@classLabel true a b
@data
1.0,2.0,3.0:a

4,5,6:b
"""

MULTIVARIATE = """@problemName TinyMulti
@univariate false
@dimensions 2
@classLabel true x y
@data
1,2,3:10,20,30:x
4,5,6:40,50,60:y
"""

UNEQUAL = """@problemName TinyUnequal
@equalLength false
@classLabel false
@data
1,2,3,4
5,6
7,8,9,?,?
"""


def write_text(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def spec(**changes):
    values = dict(
        family="rnn",
        input_dim=1,
        hidden_dims=(),
        embedding_dim=4,
        rnn_hidden_size=8,
    )
    values.update(changes)
    return ModelSpec(**values)


def test_ts_univariate(tmp_path):
    data = read_ts(write_text(tmp_path, "a.ts", UNIVARIATE))
    assert data.channels == 1
    assert data.labels == ["a", "b"]
    assert [s.shape for s in data.series] == [(3, 1), (3, 1)]
    assert data.series[1][:, 0].tolist() == [4.0, 5.0, 6.0]


def test_ts_multivariate_is_steps_by_channels(tmp_path):
    data = read_ts(write_text(tmp_path, "m.ts", MULTIVARIATE))
    assert data.channels == 2
    assert data.series[0].tolist() == [[1, 10], [2, 20], [3, 30]]
    assert data.labels == ["x", "y"]


def test_ts_unequal_lengths_trim_padding(tmp_path):
    data = read_ts(write_text(tmp_path, "u.ts", UNEQUAL))
    assert data.labels is None
    assert [len(s) for s in data.series] == [4, 2, 3]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("1,2,x:a", r"line 11 .*numbers separated by ',', got 'x'"),
        ("1,2,3:c", r"line 11 .*class label from @classLabel \(a b\), got 'c'"),
        ("1,2,3", r"line 11 .*values, then ':' and a class label"),
        ("1,?,3:a", r"line 11 .*no missing values inside a series"),
    ],
)
def test_ts_malformed_line_named(tmp_path, line, expected):
    text = UNIVARIATE.replace("4,5,6:b", line)
    with pytest.raises(InputError, match=expected):
        read_ts(write_text(tmp_path, "bad.ts", text))


def test_ts_channel_lengths_must_match(tmp_path):
    text = MULTIVARIATE.replace("4,5,6:40,50,60:y", "4,5,6:40,50:y")
    with pytest.raises(InputError, match=r"line 7 .*lengths \[3, 2\]"):
        read_ts(write_text(tmp_path, "bad.ts", text))


def test_ts_header_without_data(tmp_path):
    with pytest.raises(InputError, match=r"no @data line"):
        read_ts(write_text(tmp_path, "bad.ts", "@problemName X\n"))


def test_ts_timestamps_rejected(tmp_path):
    text = UNIVARIATE.replace("@timeStamps false", "@timeStamps true")
    with pytest.raises(InputError, match=r"@timeStamps true"):
        read_ts(write_text(tmp_path, "t.ts", text))


def test_tsv_matches_ts_for_gunpoint():
    from_tsv = read_tsv("data/ucr/GunPoint/GunPoint_TRAIN.tsv")
    from_ts = load_series("data/ucr/GunPoint", "train")
    assert from_tsv.labels == from_ts.labels
    for a, b in zip(from_tsv.series, from_ts.series, strict=True):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize(
    "name, rows, channels, lengths",
    [
        ("Trace", 200, 1, (275, 275)),
        ("GunPoint", 200, 1, (150, 150)),
        ("BasicMotions", 80, 6, (100, 100)),
        ("PickupGestureWiimoteZ", 100, 1, (29, 361)),
    ],
)
def test_archive_samples(name, rows, channels, lengths):
    data = load_series(f"data/ucr/{name}")
    found = [len(s) for s in data.series]
    assert len(data.series) == rows
    assert data.channels == channels
    assert (min(found), max(found)) == lengths


def write_series_table(tmp_path, series, name="series"):
    folder = tmp_path / name
    folder.mkdir()
    table = pa.table(
        {
            "id": pa.array(range(len(series)), pa.int64()),
            "features": pa.array(series, pa.list_(pa.list_(pa.float64()))),
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    return str(folder)


def test_series_table_summary(spark, tmp_path):
    path = write_series_table(tmp_path, [[[1.0, 2.0]] * 3, [[0.0, 1.0]] * 5])
    df, summary = read_feature_table(spark, path)
    assert summary.feature_dim == 2
    assert summary.series_lengths == (3, 5)
    assert df.schema["features"].dataType.simpleString() == "array<array<float>>"


def test_series_without_steps_rejected(spark, tmp_path):
    path = write_series_table(tmp_path, [[[1.0]] * 3, []])
    with pytest.raises(InputError, match=r"1 series with no time steps.*row id 1\b"):
        read_feature_table(spark, path)


def test_series_channel_counts_differ(spark, tmp_path):
    path = write_series_table(tmp_path, [[[1.0]] * 3, [[1.0, 2.0]] * 2])
    with pytest.raises(
        InputError,
        match=r"different channel counts.*row id 0 has a step with 1 value.*"
        r"row id 1 one with 2",
    ):
        read_feature_table(spark, path)


def test_series_nan_rejected(spark, tmp_path):
    path = write_series_table(tmp_path, [[[1.0]] * 3, [[1.0], [float("nan")]]])
    with pytest.raises(InputError, match=r"NaN or infinite values in 1 series.*id 1\b"):
        read_feature_table(spark, path)


def test_padding_batch_layout():
    column = pa.array([[[1.0], [2.0], [3.0]], [[4.0]]], SERIES)
    batch = series_batch_from_arrow(column)
    assert batch.values.shape == (2, 3, 1)
    assert batch.lengths.tolist() == [3, 1]
    assert batch.values[1, :, 0].tolist() == [4.0, 0.0, 0.0]


def test_padding_batch_of_sliced_column():
    column = pa.array([[[9.0]], [[1.0, 5.0], [2.0, 6.0]], [[3.0, 7.0]]], SERIES)
    batch = series_batch_from_arrow(column.slice(1, 2))
    assert batch.lengths.tolist() == [2, 1]
    assert batch.values[0].tolist() == [[1.0, 5.0], [2.0, 6.0]]
    assert batch.values[1].tolist() == [[3.0, 7.0], [0.0, 0.0]]


# Downsampling, max pooling and a shift tolerance must not see padding either.
SHIFT_OPTIONS = dict(rnn_downsample=3, rnn_pooling="max", rnn_shift_tolerance=6)


@pytest.mark.parametrize("options", [{}, SHIFT_OPTIONS], ids=["plain", "shift"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_loss_ignores_padding(cell, options):
    torch.manual_seed(0)
    model = build_autoencoder(spec(rnn_cell=cell, input_dim=2, **options))
    lengths = torch.tensor([7, 3, 5])
    values = torch.randn(3, 7, 2)
    garbage = values.clone()
    for row, length in enumerate(lengths.tolist()):
        values[row, length:] = 0.0
        garbage[row, length:] = 1e3 * torch.randn(7 - length, 2)
    clean, dirty = SeriesBatch(values, lengths), SeriesBatch(garbage, lengths)

    z_clean, rec_clean = model(clean)
    z_dirty, rec_dirty = model(dirty)
    torch.testing.assert_close(z_dirty, z_clean)
    loss_clean = model.reconstruction_loss(clean, rec_clean)
    loss_dirty = model.reconstruction_loss(dirty, rec_dirty)
    torch.testing.assert_close(loss_dirty, loss_clean)

    # Each series alone has the same code, and the padded loss equals the loss
    # of each series alone, weighted by its (downsampled) steps.
    factor = options.get("rnn_downsample", 1)
    weights = -(-lengths // factor)
    per_series = []
    for row, length in enumerate(lengths.tolist()):
        alone = SeriesBatch(values[row : row + 1, :length], lengths[row : row + 1])
        code, reconstruction = model(alone)
        torch.testing.assert_close(code[0], z_clean[row])
        loss = model.reconstruction_loss(alone, reconstruction)
        per_series.append(loss * weights[row])
    torch.testing.assert_close(loss_clean, sum(per_series) / weights.sum())


def test_z_normalisation_in_model():
    model = build_autoencoder(spec())
    batch = SeriesBatch(torch.tensor([[[1.0], [3.0], [0.0]]]), torch.tensor([2]))
    assert model.scale_input(batch)[0, :, 0].tolist() == [-1.0, 1.0, 0.0]
    raw = build_autoencoder(spec(normalize=False))
    assert raw.scale_input(batch)[0, :, 0].tolist() == [1.0, 3.0, 0.0]


def test_unknown_cell_rejected():
    with pytest.raises(InputError, match=r"model.rnn_cell 'rnn'.*gru"):
        build_autoencoder(spec(rnn_cell="rnn"))


def test_downsample_averages_real_steps():
    values = torch.tensor(
        [[[1.0], [2.0], [3.0], [4.0], [5.0]], [[6.0], [8.0]] + [[0.0]] * 3]
    )
    pooled, lengths = downsample(values, torch.tensor([5, 2]), 2)
    assert lengths.tolist() == [3, 1]
    assert pooled[0, :, 0].tolist() == [1.5, 3.5, 5.0]
    assert pooled[1, :, 0].tolist() == [7.0, 0.0, 0.0]


def test_downsample_one_is_identity():
    values = torch.randn(2, 4, 3)
    pooled, lengths = downsample(values, torch.tensor([4, 4]), 1)
    assert pooled is values
    assert lengths.tolist() == [4, 4]


def test_shift_tolerance_accepts_moved_reconstruction():
    steps = torch.zeros(1, 12, 1)
    steps[0, 6:] = 1.0
    batch = SeriesBatch(steps, torch.tensor([12]))
    strict = build_autoencoder(spec(normalize=False))
    tolerant = build_autoencoder(spec(normalize=False, rnn_shift_tolerance=2))
    # The step two time steps later; the edge values repeat.
    moved = torch.zeros(1, 12, 1)
    moved[0, 8:] = 1.0

    assert strict.reconstruction_loss(batch, moved).item() > 0.1
    assert tolerant.reconstruction_loss(batch, moved).item() == 0.0
    moved[0, 7:] = 1.0
    moved[0, 9] = 3.0
    # Moved by one step, with one wrong value: (3 - 1)^2 over 12 steps.
    assert tolerant.reconstruction_loss(batch, moved).item() == pytest.approx(4 / 12)


def test_shift_tolerance_counts_input_steps():
    # A tolerance of 5 input steps is 2 steps after downsampling by 2.
    steps = torch.zeros(1, 12, 1)
    steps[0, 6:] = 1.0
    batch = SeriesBatch(steps, torch.tensor([12]))
    model = build_autoencoder(
        spec(normalize=False, rnn_downsample=2, rnn_shift_tolerance=5)
    )
    target, _ = downsample(steps, batch.lengths, 2)
    two_later = torch.cat([target[:, :1]] * 2 + [target[:, :-2]], dim=1)
    three_later = torch.cat([target[:, :1]] * 3 + [target[:, :-3]], dim=1)
    assert model.reconstruction_loss(batch, two_later).item() == 0.0
    assert model.reconstruction_loss(batch, three_later).item() > 0.1


def test_max_pooling_takes_time_maximum():
    torch.manual_seed(0)
    last = build_autoencoder(spec())
    pooled = build_autoencoder(spec(rnn_pooling="max"))
    pooled.load_state_dict(last.state_dict())
    batch = SeriesBatch(torch.randn(2, 9, 1), torch.tensor([9, 9]))
    outputs, _ = last.encoder(last.scale_input(batch))
    expected = last.to_embedding(outputs.max(dim=1).values)
    torch.testing.assert_close(pooled.encode(batch), expected)
    assert not torch.allclose(last.encode(batch), expected)


def test_unknown_pooling_rejected():
    with pytest.raises(InputError, match=r"model.rnn_pooling 'mean'.*'last', 'max'"):
        build_autoencoder(spec(rnn_pooling="mean"))


def test_shifted_copies_move_within_length():
    values = torch.arange(1.0, 7.0).reshape(1, 6, 1).repeat(40, 1, 1)
    values[20:, 4:] = 0.0
    lengths = torch.tensor([6] * 20 + [4] * 20)
    generator = torch.Generator().manual_seed(0)
    batch = add_shifted_copies(SeriesBatch(values, lengths), 2, generator)

    assert torch.equal(batch.values, values)
    seen = set()
    for row, length in enumerate(lengths.tolist()):
        copy = batch.shifted[row, :, 0]
        series = values[row, :length, 0]
        matches = [
            offset
            for offset in range(-2, 3)
            if torch.equal(
                copy[:length],
                series[(torch.arange(length) - offset).clamp(0, length - 1)],
            )
        ]
        assert len(matches) == 1, (row, copy.tolist())
        seen.add(matches[0])
        assert copy[length:].abs().sum().item() == 0.0
    assert seen == {-2, -1, 0, 1, 2}


def test_shifted_copies_zero_shift_unchanged():
    batch = SeriesBatch(torch.randn(3, 5, 2), torch.tensor([5, 4, 2]))
    assert add_shifted_copies(batch, 0) is batch


def test_invariance_term_in_training_loss():
    torch.manual_seed(0)
    values = torch.randn(4, 10, 1)
    lengths = torch.tensor([10, 10, 7, 9])
    values[2, 7:] = 0.0
    values[3, 9:] = 0.0
    same = SeriesBatch(values, lengths, shifted=values.clone())
    moved = add_shifted_copies(
        SeriesBatch(values, lengths), 3, torch.Generator().manual_seed(1)
    )
    for weight in (0.0, 1.0):
        model = build_autoencoder(spec(rnn_invariance_weight=weight))
        code, reconstruction = model(moved)
        assert code.shape == (8, 4)
        assert reconstruction.shape == (4, 10, 1)
        plain = model.reconstruction_loss(moved, reconstruction)
        loss = model.training_loss(moved, code, reconstruction)
        if weight:
            own, copy = code.chunk(2)
            term = ((own - copy) ** 2).mean() / (code.var(dim=0).mean() + 1e-6)
            torch.testing.assert_close(loss, plain + term)
            assert term.item() > 0
        else:
            torch.testing.assert_close(loss, plain)

    # A copy equal to its series adds nothing.
    model = build_autoencoder(spec())
    code, reconstruction = model(same)
    torch.testing.assert_close(
        model.training_loss(same, code, reconstruction),
        model.reconstruction_loss(same, reconstruction),
    )


def test_embedding_equals_direct_torch_unequal(spark, tmp_path):
    data = load_series("data/ucr/PickupGestureWiimoteZ")
    folder = tmp_path / "pickup"
    folder.mkdir()
    pq.write_table(series_arrow_table(data), folder / "part-0.parquet")
    df, summary = read_feature_table(spark, str(folder))
    assert summary.series_lengths == (29, 361)

    torch.manual_seed(1)
    model = build_autoencoder(spec(rnn_layers=2)).eval()
    weights = state_dict_to_bytes(model)
    rows = embed_table(df, model.spec, weights, batch_rows=7).orderBy("id").collect()

    assert [row["id"] for row in rows] == list(range(len(data.series)))
    actual = np.array([row["embedding"] for row in rows], dtype=np.float32)
    # Each series alone, with no padding, must embed the same as in a batch.
    with torch.no_grad():
        expected = np.concatenate(
            [
                model.embed(
                    SeriesBatch(torch.from_numpy(s[None]), torch.tensor([len(s)]))
                ).numpy()
                for s in data.series
            ]
        )
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def trace_table(spark, tmp_path_factory):
    from deepclust.read.prepare import prepare_table

    path = str(tmp_path_factory.mktemp("tables") / "trace")
    assert prepare_table(spark, "ucr", path, "data/ucr/Trace") == 200
    return path


@pytest.mark.slow
def test_trace_end_to_end(spark, tracking_uri, tmp_path, trace_table):
    from mlflow.tracking import MlflowClient

    from pipelines.train import run_training_job
    from tests.conftest import write_config

    config = write_config(
        tmp_path / "trace.yaml",
        data={"path": trace_table},
        model={
            "family": "rnn",
            "rnn_hidden_size": 16,
            "embedding_dim": 4,
            "rnn_downsample": 5,
            "rnn_pooling": "max",
            "rnn_shift_tolerance": 75,
        },
        train={
            "epochs": 4,
            "batch_size": 32,
            "learning_rate": 0.005,
            "series_shift_steps": 40,
        },
        cluster={"k": 4, "n_init": 3},
        output={"path": str(tmp_path / "out")},
        tracking={"experiment": "tests"},
    )
    result = run_training_job(spark, config)

    # Chance level is NMI 0.
    assert result.metrics["nmi"] > 0.2
    assignments = spark.read.parquet(str(tmp_path / "out" / "assignments"))
    assert assignments.count() == 200
    client = MlflowClient(tracking_uri)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert "cluster_series.png" in artifacts
    assert "reconstructions.png" in artifacts
    spec = client.download_artifacts(result.run_id, "model/spec.json")
    assert '"family": "rnn"' in open(spec).read()

    # The registered series model scores the same table as training did, in
    # Spark and through the pyfunc.
    import mlflow
    import pandas as pd

    from pipelines.score import run_scoring_job

    trained = {r["id"]: r["cluster"] for r in assignments.collect()}
    scored = run_scoring_job(
        spark,
        config,
        trace_table,
        str(tmp_path / "scores"),
        "2026-01-31",
        "models:/deepclust@candidate",
    )
    rows = spark.read.parquet(scored.partition_path).collect()
    assert len(rows) == 200
    assert all(trained[r["id"]] == r["cluster"] for r in rows)

    model = mlflow.pyfunc.load_model("models:/deepclust@candidate")
    sample = spark.read.parquet(trace_table).orderBy("id").limit(5).toPandas()
    predicted = model.predict(
        pd.DataFrame({"id": sample["id"], "features": sample["features"]})
    )
    assert predicted["cluster"].tolist() == [trained[i] for i in sample["id"]]


def test_mlp_on_series_table_rejected(spark, tracking_uri, tmp_path, trace_table):
    from pipelines.train import run_training_job
    from tests.conftest import write_config

    config = write_config(
        tmp_path / "bad.yaml",
        data={"path": trace_table},
        model={"family": "mlp"},
        output={"path": str(tmp_path / "out")},
    )
    with pytest.raises(InputError, match=r"'mlp' expects feature vectors.*rnn"):
        run_training_job(spark, config)


def test_rnn_on_vector_table_rejected(spark, tracking_uri, tmp_path, iris_table):
    from pipelines.train import run_training_job
    from tests.conftest import write_config

    config = write_config(
        tmp_path / "bad.yaml",
        data={"path": iris_table},
        model={"family": "rnn"},
        cluster={"k": 3},
        output={"path": str(tmp_path / "out")},
    )
    with pytest.raises(InputError, match=r"'rnn' expects a series table.*length 4"):
        run_training_job(spark, config)


def test_series_shift_on_vector_table_rejected(
    spark, tracking_uri, tmp_path, iris_table
):
    from pipelines.train import run_training_job
    from tests.conftest import write_config

    config = write_config(
        tmp_path / "bad.yaml",
        data={"path": iris_table},
        train={"series_shift_steps": 10},
        cluster={"k": 3},
        output={"path": str(tmp_path / "out")},
    )
    with pytest.raises(
        InputError, match=r"train.series_shift_steps: 10 needs series.*'mlp'"
    ):
        run_training_job(spark, config)
