"""Training components shared by pretraining and fine-tuning: optimizer, checkpoints, logs,
stopping on a signal."""
