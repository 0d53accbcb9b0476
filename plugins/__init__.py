"""Built-in architectures, installed as `zoo.plugins` and registered through entry points."""
