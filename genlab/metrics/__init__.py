"""Sample-quality measures and the feature extractors they use."""
