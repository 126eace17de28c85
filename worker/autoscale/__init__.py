"""The autoscaler: worker replicas from the SQL backlog (policy, Docker replicas, metrics, loop)."""
