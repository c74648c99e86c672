"""Adapters: one module per AWS service, the only place boto3 is called."""
