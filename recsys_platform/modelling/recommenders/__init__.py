"""Recommendation models trained on Personalize-format interactions.

The local Personalize stand-in trains these for its recipes; `recsys-platform evaluate` and the
quality benchmark use them directly. Everything here is plain numpy/scipy: no Dagster, no AWS.
`registry.create_recommender` maps a Personalize recipe to a model.
"""
