"""Logging: structlog for our code and the stdlib loggers of libraries, rendered one way.

A terminal gets human console lines; anything else (journald, a pipe) gets one JSON object per
line, so `journalctl -o cat` or a log shipper can parse it.

Tracebacks are rendered without the frames' local variables (structlog shows them by default, in
both renderers): a frame holding the settings, a password read from a file or a credential would
otherwise put it in the journal.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import Processor


def configure(
    level: str = "INFO", *, stream: TextIO | None = None, json: bool | None = None
) -> None:
    stream = stream or sys.stdout
    use_json = (not stream.isatty()) if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        )
    else:
        # Plain, not rich (whose default shows locals), whatever happens to be installed.
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def set_level(level: str) -> None:
    """Change the level only (a reload): where and how logs are written stays."""
    logging.getLogger().setLevel(level.upper())
