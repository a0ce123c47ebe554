"""chaoskit: rehearse a flash-sale surge against an order stack.

The public surface is small; the CLI (``chaoskit.cli``) is one user of it.
"""

from chaoskit.errors import ChaoskitError

__all__ = ["ChaoskitError", "__version__"]
__version__ = "0.1.0"
