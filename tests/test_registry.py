"""The registered clustering model: contents, ad-hoc predict and promotion."""

import os

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from deepclust.cli import main
from deepclust.config import RegistryConfig
from deepclust.errors import InputError
from deepclust.registry import CANDIDATE, CHAMPION, promote, register_trained_model

pytestmark = pytest.mark.slow


@pytest.fixture
def client(trained_iris):
    mlflow.set_tracking_uri(trained_iris["tracking_uri"])
    return MlflowClient(trained_iris["tracking_uri"])


def training_assignments(spark, trained_iris):
    rows = spark.read.parquet(trained_iris["assignments"]).collect()
    return {row["id"]: (row["cluster"], row["distance"]) for row in rows}


def test_version_holds_model_and_alias(client, trained_iris):
    version = client.get_model_version_by_alias("iris-test", CANDIDATE)
    assert int(version.version) == 1
    assert version.run_id == trained_iris["run_id"]

    info = mlflow.models.get_model_info("models:/iris-test@candidate")
    assert [spec.name for spec in info.signature.inputs.inputs] == ["id", "features"]
    assert [spec.name for spec in info.signature.outputs.inputs] == [
        "id",
        "cluster",
        "distance",
    ]
    assert info.saved_input_example_info["type"] == "dataframe"
    assert info.metadata == {
        "model_family": "mlp",
        "feature_dim": 4,
        "embedding_dim": 2,
    }

    folder = mlflow.artifacts.download_artifacts("models:/iris-test@candidate")
    assert sorted(os.listdir(os.path.join(folder, "artifacts"))) == [
        "autoencoder.pt",
        "centroids.json",
        "spec.json",
    ]
    with open(os.path.join(folder, "MLmodel"), encoding="utf-8") as handle:
        flavor = yaml.safe_load(handle)["flavors"]["python_function"]
    assert sorted(flavor["artifacts"]) == ["centroids", "spec", "weights"]


def test_model_is_code_not_pickle(client):
    folder = mlflow.artifacts.download_artifacts("models:/iris-test@candidate")
    files = os.listdir(folder)
    assert "model_code.py" in files
    assert not [name for name in files if name.endswith((".pkl", ".pickle"))]


def test_load_by_alias_predict_matches_training(spark, client, trained_iris):
    model = mlflow.pyfunc.load_model("models:/iris-test@champion")
    table = spark.read.parquet(
        client.get_run(trained_iris["run_id"]).data.params["data.path"]
    ).toPandas()

    output = model.predict(table[["id", "features"]])

    expected = training_assignments(spark, trained_iris)
    assert list(output.columns) == ["id", "cluster", "distance"]
    assert len(output) == 150
    assert {row.id: row.cluster for row in output.itertuples()} == {
        i: cluster for i, (cluster, _) in expected.items()
    }
    distances = np.array([expected[i][1] for i in output["id"]])
    np.testing.assert_allclose(output["distance"], distances, rtol=1e-5, atol=1e-6)
    without_id = model.predict(table[["features"]])
    assert list(without_id.columns) == ["cluster", "distance"]
    assert without_id["cluster"].tolist() == output["cluster"].tolist()


def test_predict_rejects_wrong_feature_length(client):
    model = mlflow.pyfunc.load_model("models:/iris-test@champion")
    import pandas as pd

    frame = pd.DataFrame({"id": [1, 2], "features": [[1.0] * 4, [1.0] * 5]})
    with pytest.raises(InputError, match=r"row 1 .*expected 4 values, got 5"):
        model.predict(frame)


def register_with_metric(spark, trained_iris, name, value):
    """Register the trained model again from a run whose silhouette is ``value``."""
    client = MlflowClient(trained_iris["tracking_uri"])
    source = trained_iris["run_id"]
    folder = mlflow.artifacts.download_artifacts(run_id=source, artifact_path="")
    mlflow.set_experiment("tests")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(os.path.join(folder, "model"), "model")
        mlflow.log_artifact(os.path.join(folder, "centroids.json"))
        if value is not None:
            mlflow.log_metric("silhouette", value)
        table = client.get_run(source).data.params["data.path"]
        return register_trained_model(spark, run.info.run_id, name, table).version


def test_promotion_rules(spark, client, trained_iris):
    settings = RegistryConfig(model_name="promo-test")
    first = register_with_metric(spark, trained_iris, "promo-test", 0.5)
    worse = register_with_metric(spark, trained_iris, "promo-test", 0.4)
    better = register_with_metric(spark, trained_iris, "promo-test", 0.6)

    def champion():
        return int(client.get_model_version_by_alias("promo-test", CHAMPION).version)

    # The newest registration has the candidate alias.
    assert int(client.get_model_version_by_alias("promo-test", CANDIDATE).version) == 3

    result = promote(client, settings, first)
    assert result.promoted and result.previous is None
    assert champion() == first

    result = promote(client, settings, worse)
    assert not result.promoted
    assert "silhouette 0.4 does not beat 0.5 of version 1" in result.reason
    assert champion() == first

    assert promote(client, settings, better).promoted
    assert champion() == better
    assert not promote(client, settings, better).promoted

    lower_wins = RegistryConfig(model_name="promo-test", promote_direction="min")
    assert promote(client, lower_wins, worse).promoted
    assert champion() == worse

    assert promote(client, settings, first, force=True).promoted
    assert champion() == first
    tags = client.get_model_version("promo-test", str(first)).tags
    assert tags["deepclust.promotion"] == "forced"


def test_promotion_rejects_bad_requests(spark, client, trained_iris):
    settings = RegistryConfig(model_name="promo-bad")
    first = register_with_metric(spark, trained_iris, "promo-bad", 0.5)
    unscored = register_with_metric(spark, trained_iris, "promo-bad", None)
    promote(client, settings, first)

    with pytest.raises(InputError, match=r"Missing metric 'silhouette'.*--force"):
        promote(client, settings, unscored)
    with pytest.raises(
        InputError,
        match=r"has no version 9; it has versions \[1, 2\], "
        r"aliases \{'candidate': 2, 'champion': 1\}",
    ):
        promote(client, settings, 9)
    with pytest.raises(InputError, match=r"Registered model 'nope' not found"):
        promote(client, RegistryConfig(model_name="nope"))
    other = RegistryConfig(model_name="promo-bad", promote_metric="acc")
    with pytest.raises(InputError, match=r"Missing metric 'acc'"):
        promote(client, other, unscored)
    assert int(client.get_model_version_by_alias("promo-bad", CHAMPION).version) == 1


def test_promote_command_exit_status(client, trained_iris, capsys):
    config = trained_iris["config"]
    assert main(["promote", config]) == 0
    assert "version 1 not promoted" in capsys.readouterr().out
    assert main(["promote", config, "--version", "7"]) == 2
    assert "has no version 7" in capsys.readouterr().err


def test_predict_rejects_nan():
    import pandas as pd

    from deepclust.registry.pyfunc import features_to_numpy

    frame = pd.DataFrame({"features": [[0.5, 1.0], [float("nan"), 1.0]]})
    with pytest.raises(InputError, match=r"row 1 .* NaN or infinite"):
        features_to_numpy(frame, 2)
