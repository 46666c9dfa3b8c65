"""`data=folder`: the user's own images, scanned (scan.py), decoded once into a keyed cache (decode.py,
cache.py) and served as splits like the built-in data sets (source.py)."""
