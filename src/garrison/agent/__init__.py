"""The host agent: joins the fleet, tails and parses logs, ships them, renews its certificate."""
