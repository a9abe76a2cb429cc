"""The scoring job on a registered model: results, idempotence, bad input."""

import logging
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

import pipelines.score
from deepclust.errors import InputError
from pipelines.score import run_scoring_job

pytestmark = pytest.mark.slow

DAY = "2026-01-31"
NEXT_DAY = "2026-02-01"


def score(spark, trained_iris, table, output, date=DAY, **options):
    return run_scoring_job(
        spark, trained_iris["config"], table, str(output), date, **options
    )


def partition_rows(spark, output, date):
    rows = spark.read.parquet(str(output / f"date={date}")).collect()
    return {row["id"]: row for row in rows}


def last_scoring_run(trained_iris):
    client = MlflowClient(trained_iris["tracking_uri"])
    experiment = client.get_experiment_by_name("tests")
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`deepclust.job` = 'score'",
        order_by=["start_time DESC"],
    )
    return runs[0]


def write_table(folder, ids, features):
    folder.mkdir()
    pq.write_table(
        pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "features": pa.array(features, pa.list_(pa.float32())),
            }
        ),
        folder / "part-0.parquet",
    )
    return str(folder)


def test_scoring_repeats_training_assignment(spark, trained_iris, iris_table, tmp_path):
    output = tmp_path / "scores"
    result = score(spark, trained_iris, iris_table, output)

    training = {
        row["id"]: row
        for row in spark.read.parquet(trained_iris["assignments"]).collect()
    }
    scored = partition_rows(spark, output, DAY)
    assert len(scored) == 150
    assert {i: row["cluster"] for i, row in scored.items()} == {
        i: row["cluster"] for i, row in training.items()
    }
    for i, row in scored.items():
        assert row["distance"] == pytest.approx(training[i]["distance"], abs=1e-9)
        assert row["model_version"] == 1
    assert result.model_version == 1
    assert sorted(os.listdir(output)) == [f"date={DAY}"]

    table = spark.read.parquet(str(output))
    assert set(table.columns) == {"id", "cluster", "distance", "model_version", "date"}
    assert table.filter(F.col("date") == F.lit(DAY).cast("date")).count() == 150

    run = last_scoring_run(trained_iris)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert metrics["rows_in"] == 150
    assert metrics["rows_out"] == 150
    assert metrics["model_version"] == 1
    assert metrics["drift_psi"] == pytest.approx(0.0, abs=1e-12)
    shares = [metrics[f"cluster_share_{c}"] for c in range(3)]
    assert sum(shares) == pytest.approx(1.0)
    assert metrics["mean_distance"] > 0
    assert run.data.params["model_uri"] == "models:/iris-test@champion"
    assert run.data.params["model_version"] == "1"
    assert run.data.params["training_run_id"] == trained_iris["run_id"]


def test_rerun_replaces_only_its_date(spark, trained_iris, iris_table, tmp_path):
    output = tmp_path / "scores"
    score(spark, trained_iris, iris_table, output, DAY)
    score(spark, trained_iris, iris_table, output, NEXT_DAY)
    subset = write_table(
        tmp_path / "subset",
        list(range(10)),
        [
            row["features"]
            for row in spark.read.parquet(iris_table).orderBy("id").take(10)
        ],
    )

    score(spark, trained_iris, subset, output, DAY, model_uri="models:/iris-test/1")

    assert sorted(partition_rows(spark, output, DAY)) == list(range(10))
    assert len(partition_rows(spark, output, NEXT_DAY)) == 150
    assert sorted(os.listdir(output)) == [f"date={DAY}", f"date={NEXT_DAY}"]


def test_failure_mid_write_keeps_output(
    spark, trained_iris, iris_table, tmp_path, monkeypatch
):
    output = tmp_path / "scores"
    score(spark, trained_iris, iris_table, output, DAY)
    score(spark, trained_iris, iris_table, output, NEXT_DAY)
    before = partition_rows(spark, output, DAY)

    real_assign = pipelines.score.assign_clusters

    def assign_then_fail(embeddings, centroids):
        # Spread the rows over tasks so some write files before one fails.
        assigned = real_assign(embeddings.repartition(4, "id"), centroids)
        failing = F.when(F.col("id") == 149, F.raise_error(F.lit("injected failure")))
        return assigned.withColumn("cluster", failing.otherwise(F.col("cluster")))

    monkeypatch.setattr(pipelines.score, "assign_clusters", assign_then_fail)
    with pytest.raises(Exception, match="injected failure"):
        score(spark, trained_iris, iris_table, output, DAY)

    assert partition_rows(spark, output, DAY) == before
    assert len(partition_rows(spark, output, NEXT_DAY)) == 150
    assert sorted(os.listdir(output)) == [f"date={DAY}", f"date={NEXT_DAY}"]
    assert last_scoring_run(trained_iris).info.status == "FAILED"


def bad_tables(tmp_path):
    return {
        "length": write_table(tmp_path / "wide", [1, 2], [[0.5] * 5, [0.5] * 5]),
        "empty": write_table(tmp_path / "empty", [], []),
        "no features": str(tmp_path / "ids"),
    }


@pytest.mark.parametrize(
    "case, pattern",
    [
        (
            "missing alias",
            r"models:/iris-test@nope' not found.*no alias 'nope'.*"
            r"aliases \{'candidate': 1, 'champion': 1\}",
        ),
        ("missing model", r"no registered model 'nobody'"),
        ("missing version", r"has no version 42.*versions \[1\]"),
        ("bad uri", r"Invalid model URI 'models:/iris-test'.*models:/<name>@<alias>"),
        ("length", r"expects 4 values per row, got 5"),
        ("empty", r"is empty: expected at least one row"),
        ("no features", r"Missing column 'features'.*expects id \(long\), features"),
        ("missing table", r"Cannot read the input table"),
        ("bad date", r"Invalid run date: expected an ISO date YYYY-MM-DD, got '31/01'"),
    ],
)
def test_bad_input_fails_run_and_writes_nothing(
    spark, trained_iris, iris_table, tmp_path, case, pattern
):
    spark.createDataFrame([(1,)], "id long").write.parquet(str(tmp_path / "ids"))
    table = bad_tables(tmp_path).get(case, iris_table)
    if case == "missing table":
        table = str(tmp_path / "no-such-table")
    uris = {
        "missing alias": "models:/iris-test@nope",
        "missing model": "models:/nobody@champion",
        "missing version": "models:/iris-test/42",
        "bad uri": "models:/iris-test",
    }
    output = tmp_path / "scores"
    date = "31/01" if case == "bad date" else DAY

    with pytest.raises(InputError, match=pattern):
        score(spark, trained_iris, table, output, date, model_uri=uris.get(case))

    assert not output.exists()
    assert not [p for p in os.listdir(tmp_path) if "staging" in p]
    run = last_scoring_run(trained_iris)
    assert run.info.status == "FAILED"
    assert "deepclust.error" in run.data.tags


def test_output_inside_input_rejected(spark, trained_iris, iris_table, tmp_path):
    table = tmp_path / "input"
    shutil.copytree(iris_table, table)
    before = sorted(os.listdir(table))

    with pytest.raises(
        InputError, match=r"Invalid --output: expected a folder outside --input"
    ):
        score(spark, trained_iris, str(table), table / "scores")

    assert sorted(os.listdir(table)) == before
    assert last_scoring_run(trained_iris).info.status == "FAILED"


def test_drift_above_threshold_warns(spark, trained_iris, iris_table, tmp_path, caplog):
    # Only the rows of one training cluster: its share jumps to 1.
    training = spark.read.parquet(trained_iris["assignments"])
    one_cluster = (
        spark.read.parquet(iris_table)
        .join(training.filter("cluster = 0").select("id"), "id")
        .select("id", "features")
    )
    one_cluster.write.parquet(str(tmp_path / "skewed"))

    with caplog.at_level(logging.WARNING, logger="deepclust.pipeline"):
        result = score(
            spark,
            trained_iris,
            str(tmp_path / "skewed"),
            tmp_path / "scores",
            overrides=["score.drift_threshold=0.1"],
        )

    assert result.metrics["cluster_share_0"] == 1.0
    assert result.metrics["drift_psi"] > 0.1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "PSI" in warnings[0].getMessage()
    assert "score.drift_threshold 0.1000" in warnings[0].getMessage()
    assert last_scoring_run(trained_iris).data.tags["deepclust.drift"] == (
        "above_threshold"
    )
