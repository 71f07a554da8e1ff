"""The serving layer: the Redis read model and the HTTP API for terminals."""
