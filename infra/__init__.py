"""Deployment of sgmesh: the per-region SAM stack, the Lambda artifacts and the multi-region deploy."""
