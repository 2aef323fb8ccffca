"""Moving events off hosts: tail, spool, ship, collect."""
