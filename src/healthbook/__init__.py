"""healthbook: the open national electronic health book."""

__version__ = "0.1.0"
