"""The old import path of zoo.plugin_api.cells, kept so that code written against zoo.cells keeps working."""

from zoo.plugin_api.cells import *  # noqa: F401,F403
