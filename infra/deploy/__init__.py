"""The multi-region deploy (`python -m infra.deploy`): the deploy file, its checks, the stacks, the wiring."""
