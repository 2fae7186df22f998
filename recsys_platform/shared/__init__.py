"""Small modules that both the code location and the embedded default's stand-ins read: Amazon
Personalize's documented facts, and the offline metrics the gate and the local Personalize compute.
They import nothing else of the project."""
