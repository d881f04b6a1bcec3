"""rlhfops: reinforcement learning from human feedback, run as an operation.

Importing this package is cheap: torch and transformers load only when a model is touched.
"""

__version__ = "0.1.0"
