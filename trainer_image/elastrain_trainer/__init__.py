"""elastrain's trainer: the code that runs in the trainer image."""
