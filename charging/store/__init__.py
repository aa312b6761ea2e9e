"""Balance stores: the embedded in-process store and the Redis store, one contract."""
