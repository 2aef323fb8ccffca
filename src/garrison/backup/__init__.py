"""PostgreSQL backups: WAL archiving and base backups, zstd then OpenPGP, point-in-time restore."""
