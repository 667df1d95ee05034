"""Pure Flax networks and the objective wrappers the trainer trains."""
