"""State shared by CLI commands: the lazily loaded config and the exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from monitor.settings import Config

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class Ctx:
    """Lazily loaded config shared by the subcommands."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self, required: bool = False) -> Config:
        if self._config is None:
            # imported here: pydantic and the config models are a fifth of a second that
            # `ingest` spends reading its first file instead (monitor/cli/ingest_cmd.py)
            from monitor.settings import load_config

            self._config = load_config(self.config_path, required=required)
        return self._config


pass_ctx = click.make_pass_decorator(Ctx)
