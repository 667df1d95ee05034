"""The framework: one trainer, partitioning, data seam, checkpoints, gin entry points."""
