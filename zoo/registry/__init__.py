"""The plugins the zoo finds (entry points: architectures, export formats, recipes), what `zoo list` shows of
them, and how a name resolves to a run's config."""
