"""SSH certificate authority, CLI and real sshd."""
