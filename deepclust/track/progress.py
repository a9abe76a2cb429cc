"""Stage progress: one log line at the start and end of each stage."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

_logger = logging.getLogger("deepclust.pipeline")


class StageTimer:
    """Log each stage's start and end, and keep its wall seconds.

    Example
    -------
    >>> timer = StageTimer()
    >>> with timer.stage("embed") as stage:
    ...     stage["rows"] = 10
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str):
        """Time a stage; set ``info["rows"]`` inside to log its row count."""
        info: dict = {}
        _logger.info("stage %s: start", name)
        started = time.perf_counter()
        yield info
        elapsed = time.perf_counter() - started
        self.seconds[name] = elapsed
        if "rows" in info:
            self.rows[name] = int(info["rows"])
            _logger.info(
                "stage %s: done, %d rows in %.1f s", name, info["rows"], elapsed
            )
        else:
            _logger.info("stage %s: done in %.1f s", name, elapsed)
