"""Electronic medical insurance QR verifier."""

__version__ = "0.1.0"
