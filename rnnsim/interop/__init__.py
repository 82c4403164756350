"""Conversions from other frameworks' weights into rnnsim networks."""
