"""Move the ``champion`` alias to a registered version."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from deepclust.config import RegistryConfig
from deepclust.errors import InputError
from deepclust.registry.register import CANDIDATE, CHAMPION, describe_versions

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Promotion:
    """The outcome of a promotion request.

    Attributes
    ----------
    promoted : bool
        Whether ``champion`` now points at ``version``.
    version : int
        The requested version.
    previous : int or None
        The champion before the request; None if there was none.
    reason : str
        One sentence for the log and the terminal.
    """

    promoted: bool
    version: int
    previous: int | None
    reason: str


def promote(
    client: MlflowClient,
    settings: RegistryConfig,
    version: int | None = None,
    force: bool = False,
) -> Promotion:
    """Point ``champion`` at a version if it beats the current champion.

    The comparison uses the metric ``settings.promote_metric`` of each
    version's training run; ``settings.promote_direction`` ``"max"`` means a
    larger value wins. A tie keeps the current champion. Without a champion,
    the version is promoted. With ``force`` the metric is not read.

    Parameters
    ----------
    client : MlflowClient
        Client of the tracking and registry store.
    settings : RegistryConfig
        ``model_name``, ``promote_metric`` and ``promote_direction``.
    version : int, optional
        Default: the version with the alias ``candidate``.

    Raises
    ------
    InputError
        If the model, the version or the candidate does not exist, or, without
        ``force``, a compared version's run lacks the metric.
    """
    name = settings.model_name
    target = _find_version(client, name, version)
    current = _champion(client, name)
    number = int(target.version)
    previous = int(current.version) if current is not None else None
    if previous == number:
        return _decide(client, name, number, previous, False, "it is the champion")
    if force:
        return _decide(client, name, number, previous, True, "forced")
    if current is None:
        return _decide(client, name, number, previous, True, "no champion yet")

    metric = settings.promote_metric
    new_value = _metric(client, target, metric)
    old_value = _metric(client, current, metric)
    better = (
        new_value > old_value
        if settings.promote_direction == "max"
        else (new_value < old_value)
    )
    verdict = "beats" if better else "does not beat"
    reason = (
        f"{metric} {new_value:.6g} {verdict} {old_value:.6g} of version "
        f"{previous} ({settings.promote_direction} wins)"
    )
    return _decide(client, name, number, previous, better, reason)


def _decide(client, name, version, previous, promoted, reason) -> Promotion:
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, str(version), "deepclust.promotion", reason)
        _logger.info(
            "registry: %r version %d is champion (was %s): %s",
            name,
            version,
            previous,
            reason,
        )
    else:
        _logger.info(
            "registry: %r version %d not promoted, champion stays %s: %s",
            name,
            version,
            previous,
            reason,
        )
    return Promotion(promoted, version, previous, reason)


def _find_version(client: MlflowClient, name: str, version: int | None):
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        raise InputError(
            f"Registered model {name!r} not found in the registry: expected the "
            "name from registry.model_name of a config that trained with "
            "registry.enabled: true. Check the name and the tracking URI."
        ) from exc
    try:
        if version is None:
            return client.get_model_version_by_alias(name, CANDIDATE)
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        requested = f"alias {CANDIDATE!r}" if version is None else f"version {version}"
        raise InputError(
            f"Registered model {name!r} has no {requested}; it has "
            f"{describe_versions(client, name)}. Pass --version with one of "
            "its versions."
        ) from exc


def _champion(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _metric(client: MlflowClient, version, metric: str) -> float:
    metrics = client.get_run(version.run_id).data.metrics
    value = metrics.get(metric)
    if value is None or not math.isfinite(value):
        raise InputError(
            f"Missing metric {metric!r} in training run {version.run_id} of "
            f"version {version.version}: expected a finite value to compare, got "
            f"{value!r}; the run has {sorted(metrics)}. Set "
            "registry.promote_metric to one of these, or pass --force."
        )
    return float(value)
