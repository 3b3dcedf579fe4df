"""Universal domain adaptation: DeepAstroUDA, DANCE and source-only training."""
