"""Entropy models: latent codecs for y (and z), one file per family."""
