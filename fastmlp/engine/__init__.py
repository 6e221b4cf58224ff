"""What a fit needs, in Python: the network, optimizers, NumPy reference and backends."""
