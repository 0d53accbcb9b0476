"""The old import path of zoo.inference.runtime, kept so that code written against zoo.runtime keeps working."""

from zoo.inference.runtime import *  # noqa: F401,F403
