"""The embedded default: a multi-region sgmesh on moto, with AWS's missing parts played locally."""
