"""Exceptions raised for bad input, with one message template."""


class DeepClustError(Exception):
    """Base class of the errors that deepclust raises on purpose."""


class InputError(DeepClustError, ValueError):
    """A value from the user (config, table, path) is not of the expected form."""


class ConfigError(InputError):
    """A config key is unknown or a config value is invalid."""


class TrainingError(DeepClustError, RuntimeError):
    """Distributed training failed on one of its ranks, or could not start."""


class JobTerminated(BaseException):
    """The job received SIGTERM, as schedulers send to stop a job.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except
    Exception`` on the way swallows it. Every ``finally`` and context manager
    still runs, so the MLflow run ends FAILED and the staging folder is
    deleted.
    """


def invalid(name, value, expected, fix, cls=InputError):
    """Build an error that names the value, the expected form and the fix.

    Parameters
    ----------
    name : str
        What the value is, e.g. ``"config key train.epochs"`` or
        ``"column 'features'"``.
    value : object
        The value that came; shown with ``repr``.
    expected : str
        The expected form, e.g. ``"an integer >= 1"``.
    fix : str
        What the user should do next.
    cls : type
        Exception class to build.
    """
    return cls(f"Invalid {name}: expected {expected}, got {value!r}. {fix}")


class ServiceUnavailableError(DeepClustError, ConnectionError):
    """A Spark master or MLflow tracking server did not respond in time."""
