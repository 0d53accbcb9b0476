"""Built-in export formats, installed as `zoo.exporters` and registered through entry points."""
