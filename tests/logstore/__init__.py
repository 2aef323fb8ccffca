"""Tests of the log store engine (plain Python: no Django, no database)."""
