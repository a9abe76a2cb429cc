"""Job configuration: frozen dataclasses loaded from YAML and checked once.

Every key of ``conf/*.yaml`` maps to one field below. Unknown keys, wrong types
and out-of-range values raise :class:`~deepclust.errors.ConfigError` naming the
dotted key, what was expected and what came.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from deepclust.errors import ConfigError, invalid

MODEL_FAMILIES = ("mlp", "conv", "rnn")


def _int(low=None, high=None):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return (low is None or value >= low) and (high is None or value <= high)

    bounds = _describe_bounds(low, high)
    return check, f"an integer{bounds}"


def _float(low=None, high=None, low_open=False):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if low is not None and (value <= low if low_open else value < low):
            return False
        return high is None or value <= high

    if low_open:
        bounds = f" > {low}" + (f" and <= {high}" if high is not None else "")
    else:
        bounds = _describe_bounds(low, high)
    return check, f"a number{bounds}"


def _describe_bounds(low, high):
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def _bool():
    return (lambda value: isinstance(value, bool)), "true or false"


def _str(optional=False):
    def check(value):
        if value is None:
            return optional
        return isinstance(value, str) and value.strip() != ""

    return check, "a non-empty string" + (" or null" if optional else "")


def _choice(*choices):
    return (lambda value: value in choices), "one of " + ", ".join(map(repr, choices))


def _int_list(low=1, optional=False, length=None, min_length=0):
    def check(value):
        if value is None:
            return optional
        if not isinstance(value, (list, tuple)):
            return False
        if length is not None and len(value) != length:
            return False
        if len(value) < min_length:
            return False
        return all(
            isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value
        )

    size = f"{length} " if length is not None else ""
    if min_length:
        size = f"{min_length} or more "
    text = f"a list of {size}integers >= {low}" + (" or null" if optional else "")
    return check, text


def _odd_int(low, high):
    def check(value):
        in_range, _ = _int(low, high)
        return in_range(value) and value % 2 == 1

    return check, f"an odd integer from {low} to {high}"


def _option(default, check, help_text=""):
    """Declare a config field with its check and a short description."""
    return field(default=default, metadata={"check": check, "help": help_text})


@dataclass(frozen=True)
class DataConfig:
    """Location of the feature table and the shape of its features."""

    path: str = _option(None, _str(), "parquet feature table (id, features[, label])")
    image_shape: tuple | None = _option(
        None,
        _int_list(low=1, optional=True, length=3),
        "channels, height, width of each row's features (channels first); "
        "needed by model.family conv and train.shift_pixels",
    )


@dataclass(frozen=True)
class ModelConfig:
    """The autoencoder family and its layer sizes."""

    family: str = _option("mlp", _choice(*MODEL_FAMILIES))
    hidden_dims: tuple = _option(
        (500, 500, 2000), _int_list(low=1), "mlp: units of the encoder layers"
    )
    conv_channels: tuple = _option(
        (32, 64, 128),
        _int_list(low=1, min_length=1),
        "conv: output channels of each stride-2 block",
    )
    kernel_size: int = _option(3, _odd_int(1, 15), "conv: side of the kernels")
    embedding_dim: int = _option(10, _int(low=1, high=4096))
    scaling: str = _option("none", _choice("none", "standard", "minmax"))
    normalize_embedding: bool = _option(
        False, _bool(), "scale each embedding to unit length before KMeans"
    )
    # The rnn family, for series tables; the other families ignore these.
    rnn_cell: str = _option("gru", _choice("gru", "lstm"), "recurrent cell of rnn")
    rnn_hidden_size: int = _option(
        64, _int(low=1, high=4096), "hidden size of the encoder and decoder RNNs"
    )
    rnn_layers: int = _option(1, _int(low=1, high=16), "stacked RNN layers")
    bidirectional: bool = _option(
        True, _bool(), "whether the encoder RNN reads series in both directions"
    )
    normalize: bool = _option(
        True, _bool(), "z-normalise each series and channel inside the rnn model"
    )
    rnn_downsample: int = _option(
        1, _int(low=1, high=1024), "time steps the rnn encoder averages into one"
    )
    rnn_pooling: str = _option(
        "last",
        _choice("last", "max"),
        "rnn code from the final hidden states or the maximum over time",
    )
    rnn_shift_tolerance: int = _option(
        0,
        _int(low=0, high=100_000),
        "time steps by which the rnn reconstruction may be shifted in the loss",
    )
    rnn_invariance_weight: float = _option(
        1.0,
        _float(low=0, high=1000),
        "weight of the loss term between the codes of a series and its shifted "
        "copy; used with train.series_shift_steps",
    )

    @property
    def layer_sizes(self) -> tuple:
        """Encoder layer sizes of the chosen family."""
        return self.conv_channels if self.family == "conv" else self.hidden_dims


@dataclass(frozen=True)
class TrainConfig:
    """Autoencoder training with TorchDistributor."""

    epochs: int = _option(50, _int(low=1, high=100_000))
    batch_size: int = _option(
        256, _int(low=1, high=1_000_000), "global batch, split across the ranks"
    )
    learning_rate: float = _option(1e-3, _float(low=0, high=10, low_open=True))
    weight_decay: float = _option(0.0, _float(low=0, high=1))
    num_processes: int = _option(2, _int(low=1, high=4096))
    local_mode: bool = _option(True, _bool())
    use_gpu: bool = _option(False, _bool())
    shuffle_buffer_rows: int = _option(100_000, _int(low=1))
    shift_pixels: int = _option(
        0,
        _int(low=0, high=64),
        "images: random shift of up to this many pixels per sample, in "
        "pre-training and refinement",
    )
    rotation_degrees: float = _option(
        0.0,
        _float(low=0, high=180),
        "images: random rotation of up to this many degrees per sample, in "
        "pre-training and refinement",
    )
    series_shift_steps: int = _option(
        0,
        _int(low=0, high=100_000),
        "rnn family: largest random time shift of the series copies that the "
        "invariance term compares; 0 adds no copies",
    )
    shards_per_process: int = _option(2, _int(low=1, high=1024))


@dataclass(frozen=True)
class EmbedConfig:
    """Batched embedding inside Spark."""

    batch_rows: int = _option(10_000, _int(low=1, high=10_000_000))


@dataclass(frozen=True)
class ClusterConfig:
    """MLlib KMeans on the embeddings."""

    k: int = _option(10, _int(low=2, high=100_000))
    max_iter: int = _option(100, _int(low=1, high=100_000))
    tol: float = _option(1e-4, _float(low=0))
    init_mode: str = _option(
        "k-means++",
        _choice("k-means++", "k-means||"),
        "k-means++: seed with greedy k-means++ and Lloyd on a sample of "
        "init_sample rows on the driver; k-means||: MLlib's distributed seeding",
    )
    init_sample: int = _option(
        10_000,
        _int(low=1, high=1_000_000),
        "k-means++: rows sampled to the driver (at least 20 per cluster)",
    )
    init_steps: int = _option(2, _int(low=1, high=100), "k-means||: seeding passes")
    n_init: int = _option(1, _int(low=1, high=100))


@dataclass(frozen=True)
class RefineConfig:
    """Refinement of the encoder and centroids after KMeans."""

    method: str = _option(
        "none", _choice("none", "idec"), "idec: refine with a clustering loss"
    )
    gamma: float = _option(0.1, _float(low=0), "weight of the reconstruction loss")
    balance_weight: float = _option(
        0.0,
        _float(low=0),
        "weight of KL(mean assignment || uniform); only for clusters of similar size",
    )
    learning_rate: float = _option(1e-4, _float(low=0, high=10, low_open=True))
    batch_size: int = _option(
        256, _int(low=1, high=1_000_000), "global batch, split across the ranks"
    )
    update_interval: int = _option(
        140, _int(low=1), "batches between two refreshes of the target"
    )
    tol: float = _option(
        0.001,
        _float(low=0, high=1),
        "stop when this share of rows or less changed cluster between refreshes",
    )
    max_epochs: int = _option(
        100, _int(low=1, high=100_000), "stop after this many passes at most"
    )
    alpha: float = _option(
        1.0, _float(low=0, low_open=True), "degrees of freedom of the Student-t kernel"
    )
    starving_fraction: float = _option(
        0.1,
        _float(low=0, high=1),
        "log a cluster as starving below this fraction of rows / k",
    )


@dataclass(frozen=True)
class OutputConfig:
    """Location of the job's parquet outputs."""

    path: str = _option(None, _str(), "folder for embeddings, assignments, centroids")
    overwrite: bool = _option(False, _bool())


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking."""

    uri: str | None = _option(None, _str(optional=True))
    experiment: str = _option("deepclust", _str())
    run_name: str | None = _option(None, _str(optional=True))


@dataclass(frozen=True)
class RegistryConfig:
    """The MLflow registered model that training feeds and scoring reads."""

    enabled: bool = _option(True, _bool(), "register a model version after training")
    model_name: str = _option("deepclust", _str(), "registered model name")
    promote_metric: str = _option(
        "silhouette", _str(), "training-run metric that decides a promotion"
    )
    promote_direction: str = _option(
        "max", _choice("max", "min"), "whether a larger or a smaller metric wins"
    )


@dataclass(frozen=True)
class ScoreConfig:
    """The scoring job."""

    drift_threshold: float = _option(
        0.25,
        _float(low=0),
        "population stability index of the cluster shares that logs a warning",
    )


@dataclass(frozen=True)
class JobConfig:
    """Complete configuration of a training job."""

    data: DataConfig
    output: OutputConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    seed: int = _option(0, _int(low=0, high=2**31 - 1))

    def to_dict(self) -> dict:
        """Return the config as nested plain dicts and lists."""
        return dataclasses.asdict(self)

    def flat_params(self) -> dict[str, str]:
        """Return ``{"section.key": value}`` for every field, as strings."""
        flat = {}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                for key, value in values.items():
                    flat[f"{section}.{key}"] = str(value)
            else:
                flat[section] = str(values)
        return flat


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "embed": EmbedConfig,
    "cluster": ClusterConfig,
    "refine": RefineConfig,
    "output": OutputConfig,
    "tracking": TrackingConfig,
    "registry": RegistryConfig,
    "score": ScoreConfig,
}
_REQUIRED = {("data", "path"), ("output", "path")}


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML config file into a dict, with errors that name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise invalid(
            "config path",
            path,
            "an existing YAML file",
            "Check the path; the configs shipped with deepclust are in conf/.",
            ConfigError,
        )
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Invalid YAML in config {path}: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise invalid(
            f"config {path}",
            raw,
            "a mapping of sections (data, model, train, ...)",
            "See conf/mnist_mlp.yaml for the layout.",
            ConfigError,
        )
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides; values are parsed as YAML."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise invalid(
                "override",
                item,
                "section.key=value",
                "Write it as e.g. --set train.epochs=5.",
                ConfigError,
            )
        value = yaml.safe_load(text)
        parts = key.split(".")
        if len(parts) == 1:
            merged[key] = value
        elif len(parts) == 2:
            section = merged.setdefault(parts[0], {})
            if not isinstance(section, dict):
                section = merged[parts[0]] = {}
            section[parts[1]] = value
        else:
            raise invalid(
                "override key",
                key,
                "section.key with one dot",
                "Write it as e.g. --set train.epochs=5.",
                ConfigError,
            )
    return merged


def parse_config(raw: dict) -> JobConfig:
    """Check a raw config dict and build a :class:`JobConfig`.

    Raises
    ------
    ConfigError
        For an unknown section or key, a missing required key, or a value of
        the wrong type or out of range.
    """
    top_fields = {f.name: f for f in dataclasses.fields(JobConfig)}
    for key in raw:
        if key not in top_fields:
            raise _unknown_key(key, list(top_fields))
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise invalid(
                f"config section {name!r}",
                values,
                "a mapping of keys to values",
                f"Indent the keys of {name!r} under it.",
                ConfigError,
            )
        sections[name] = _build_section(name, cls, values)
    seed = raw.get("seed", 0)
    _check_value("seed", top_fields["seed"], seed)
    return JobConfig(seed=seed, **sections)


def load_config(path, overrides=()) -> JobConfig:
    """Read, override and check a config file."""
    return parse_config(apply_overrides(read_yaml(path), list(overrides)))


def _build_section(name, cls, values):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise _unknown_key(f"{name}.{key}", [f"{name}.{k}" for k in fields])
    kwargs = {}
    for key, spec in fields.items():
        dotted = f"{name}.{key}"
        if key not in values:
            if (name, key) in _REQUIRED:
                raise ConfigError(
                    f"Missing config key {dotted}: expected "
                    f"{spec.metadata['check'][1]}. Add it to the config file "
                    f"or pass --set {dotted}=VALUE."
                )
            continue
        value = values[key]
        _check_value(dotted, spec, value)
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _check_value(dotted, spec, value):
    check, expected = spec.metadata["check"]
    if not check(value):
        raise invalid(
            f"config key {dotted}",
            value,
            expected,
            "Fix the value in the config file or with --set.",
            ConfigError,
        )


def _unknown_key(key, known):
    leaf = key.rsplit(".", 1)[-1]
    leaves = {k.rsplit(".", 1)[-1]: k for k in known}
    close = difflib.get_close_matches(leaf, list(leaves), n=1)
    hint = f" Did you mean {leaves[close[0]]!r}?" if close else ""
    return ConfigError(
        f"Unknown config key {key!r}.{hint} Valid keys here: {', '.join(known)}."
    )


def with_updates(config: JobConfig, **sections: dict[str, Any]) -> JobConfig:
    """Return a copy of ``config`` with some fields of some sections replaced."""
    changes = {
        name: dataclasses.replace(getattr(config, name), **values)
        for name, values in sections.items()
    }
    return dataclasses.replace(config, **changes)
