"""Run directories: their files (zoo.runs.layout), the record in config.json (zoo.runs.record), rebuilding a run's
tokenizer, data and model from them (zoo.runs.loaders), and what a person reads (zoo.runs.cards, zoo.runs.pictures)."""
