"""A run's configuration: its sections (zoo.config.sections), how values are set (zoo.config.values) and the
named recipes of registry.toml (zoo.config.recipes)."""
