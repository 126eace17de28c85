"""The SQL layer: models, the session scope, the job store (state machine) and registries."""
