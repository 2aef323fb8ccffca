"""SSH access: certificate authorities, certificates, revocation (claims V2, V3, M3, D2)."""
