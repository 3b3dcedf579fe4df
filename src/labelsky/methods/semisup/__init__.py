"""Semi-supervised morphology from Galaxy Zoo vote counts (ET-VAE)."""
