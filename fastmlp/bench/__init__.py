"""``fastmlp bench``: the benchmark job and its command line."""
