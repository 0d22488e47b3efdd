"""One variant's work as plain functions with no Ray in them: train, evaluate, profile."""
