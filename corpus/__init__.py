"""The agent-corpus forge."""

__version__ = "0.1.0"
