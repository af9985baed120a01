"""gen: Hydra-configured experiments on why deep networks generalize."""
__version__ = "0.6.0"
