"""Model builders; each module registers its own by name on import."""
