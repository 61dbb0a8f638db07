"""Pretraining data: documents -> NSP segment pairs -> memory-mapped shards -> masked batches."""
