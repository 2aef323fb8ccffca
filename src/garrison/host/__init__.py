"""This host: metrics, health checks, alert rules and remediation, used by the agent."""

#: The stream the agent's metrics snapshots go to (kept briefly: the monitor keeps the history).
METRICS_STREAM = "metrics"
