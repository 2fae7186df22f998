"""The model library: recommenders that stand in for Personalize's recipes, and the offline evaluation
protocol. Used by the local Personalize and `recsys-platform evaluate`; the code location never imports it."""
