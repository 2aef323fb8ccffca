"""The Django control plane: web console, REST API, source of truth for users and policies."""
