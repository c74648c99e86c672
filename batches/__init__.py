"""Handler plumbing shared by the producers and the consumer: SQS batches, through Powertools."""
