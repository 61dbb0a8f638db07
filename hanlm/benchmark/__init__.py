"""`hanlm benchmark` (issue #27): fine-tune and score models on every Korean task whose data
is found, with the same per-task settings for every model (tasks.yaml), into one table."""
