"""State shared by CLI commands: the lazily loaded config and the exit codes."""

from __future__ import annotations

import click

from monitor.settings import Config, load_config

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class Ctx:
    """Lazily loaded config shared by the subcommands."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    def config(self, required: bool = False) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, required=required)
        return self._config


pass_ctx = click.make_pass_decorator(Ctx)
