"""faceedit: infer, reconstruct and edit face attributes with a conditional VAE-GAN."""
__version__ = "0.1.0"
