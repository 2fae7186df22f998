"""Offline evaluation: Personalize's metrics and split protocol, the platform's purchase holdout,
paired comparisons, and the `recsys-platform evaluate` command."""
