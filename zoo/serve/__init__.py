"""`zoo serve`: exported models behind an HTTP API (FastAPI on uvicorn), with dynamic batching, limits, an optional
API key, health and readiness, graceful shutdown and a page to try the models. See docs/serving.md."""
