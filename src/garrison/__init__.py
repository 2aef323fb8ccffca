"""Garrison: the controls of a serious SaaS security page, for a self-hosted fleet."""

__version__ = "0.1.0"
