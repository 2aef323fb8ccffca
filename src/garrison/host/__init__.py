"""This host: metrics (and, later, health checks and remediation), used by the agent."""
