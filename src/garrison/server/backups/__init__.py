"""Console page Backups: what the backup engine reported (garrison.backup.report)."""
