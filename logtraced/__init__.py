"""logtraced: a self-hosted log receiver and search daemon."""

__version__ = "0.1.0"
