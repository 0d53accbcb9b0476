"""The old import path of zoo.plugin_api.sequences, kept so that code written against zoo.sequences keeps working."""

from zoo.plugin_api.sequences import *  # noqa: F401,F403
