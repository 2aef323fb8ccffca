"""SSH certificates issued by the control plane, and their revocation."""
