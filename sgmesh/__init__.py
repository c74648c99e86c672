"""Operator tools on top of the Lambda code: the `sgmesh` CLI and the local multi-region runtime."""
