"""The old import path of zoo.plugin_api.contract, kept so that code written against zoo.contract keeps working."""

from zoo.plugin_api.contract import *  # noqa: F401,F403
