"""Errors a user can act on. The CLI prints them as `Error: ...` without a traceback."""


class ZooError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class UnknownNameError(ZooError):
    """A recipe, architecture or export format that nobody provides."""


class PluginError(ZooError):
    """A plugin that cannot be used: broken, incompatible, or in conflict."""


class ConfigError(ZooError):
    """A bad hyperparameter, recipe, or command-line setting."""


class DataError(ZooError):
    """Missing, corrupt, or malformed data."""


class CheckpointError(ZooError):
    """A run directory or checkpoint that cannot be read."""


class ExportError(ZooError):
    """An export that failed or did not pass validation; `report` holds the validation figures, if any."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report
