"""The normalized event schemas Garrison stores (field names after OCSF classes)."""
