import pytest

from deepclust.config import apply_overrides, load_config, parse_config
from deepclust.errors import ConfigError

BASE = {"data": {"path": "t"}, "output": {"path": "o"}}


def with_section(section, **values):
    raw = {k: dict(v) for k, v in BASE.items()}
    raw.setdefault(section, {}).update(values)
    return raw


def test_defaults_follow_dec_layout():
    config = parse_config(BASE)
    assert config.model.hidden_dims == (500, 500, 2000)
    assert config.model.embedding_dim == 10
    assert config.train.local_mode is True


def test_shipped_configs_load():
    for name in (
        "mnist_mlp",
        "mnist_conv",
        "mnist_idec",
        "digits_idec",
        "digits_mlp",
        "iris_mlp",
    ):
        config = load_config(f"conf/{name}.yaml")
        assert config.output.path


def test_layer_sizes_follow_family():
    conv = parse_config(with_section("model", family="conv", conv_channels=[8, 16]))
    assert conv.model.layer_sizes == (8, 16)
    assert parse_config(BASE).model.layer_sizes == (500, 500, 2000)


def test_unknown_key_suggests_close_match():
    with pytest.raises(
        ConfigError, match=r"Unknown config key 'train.epoch'.*'train.epochs'"
    ):
        parse_config(with_section("train", epoch=3))


def test_unknown_section_rejected():
    with pytest.raises(ConfigError, match=r"Unknown config key 'trian'"):
        parse_config({**BASE, "trian": {}})


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "epochs", 0, "an integer from 1 to 100000"),
        ("train", "epochs", "ten", "an integer"),
        ("train", "learning_rate", -0.1, "a number > 0"),
        ("train", "num_processes", 0, "an integer"),
        ("train", "local_mode", "yes", "true or false"),
        ("cluster", "k", 1, "an integer from 2"),
        ("model", "family", "transformer", "one of 'mlp'"),
        ("model", "hidden_dims", [500, -1], "a list of integers >= 1"),
        ("data", "image_shape", [28, 28], "a list of 3 integers"),
        ("data", "image_shape", [1, 0, 8], "a list of 3 integers >= 1"),
        ("model", "conv_channels", [], "a list of 1 or more integers >= 1"),
        ("model", "kernel_size", 4, "an odd integer from 1 to 15"),
        ("train", "rotation_degrees", 200, "a number from 0 to 180"),
        ("refine", "method", "dec", "one of 'none', 'idec'"),
        ("refine", "tol", 1.5, "a number from 0 to 1"),
        ("refine", "update_interval", 0, "an integer >= 1"),
        ("refine", "alpha", 0, "a number > 0"),
    ],
)
def test_invalid_value_named(section, key, value, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(with_section(section, **{key: value}))
    message = str(info.value)
    assert f"config key {section}.{key}" in message
    assert expected in message
    assert repr(value) in message


def test_missing_required_key():
    with pytest.raises(ConfigError, match=r"Missing config key data.path"):
        parse_config({"output": {"path": "o"}})


def test_overrides_parse_yaml_values():
    raw = apply_overrides(BASE, ["train.epochs=3", "train.local_mode=false"])
    config = parse_config(raw)
    assert config.train.epochs == 3
    assert config.train.local_mode is False


def test_override_without_equals_rejected():
    with pytest.raises(ConfigError, match=r"section.key=value"):
        apply_overrides(BASE, ["train.epochs"])


def test_missing_config_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"Invalid config path.*an existing YAML file"
    ):
        load_config(tmp_path / "nope.yaml")


def test_train_rejects_typo_before_spark(tmp_path, tracking_uri, monkeypatch, capsys):
    import mlflow

    from deepclust import cli
    from tests.conftest import write_config

    def no_spark(*args, **kwargs):
        raise AssertionError("Spark started for an invalid config")

    monkeypatch.setattr(cli, "build_session", no_spark)
    config = write_config(
        tmp_path / "job.yaml",
        data={"path": "t"},
        output={"path": "o"},
        train={"epoch": 3},
        tracking={"experiment": "typos"},
    )
    assert cli.main(["train", config]) == 2
    assert "Did you mean 'train.epochs'?" in capsys.readouterr().err
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("typos")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert "train.epoch" in run.data.tags["deepclust.error"]
