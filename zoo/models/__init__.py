"""The models: the embedding every model reads text with (zoo.models.frontend), the classifier and the language
model around a plugin's encoder, and building them from a run's config (zoo.models.build)."""
