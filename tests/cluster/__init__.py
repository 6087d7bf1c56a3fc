"""The cluster rehearsal: every Flyte action its own ``a0`` process, as on a cluster (see ``harness``)."""
