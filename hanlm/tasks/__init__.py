"""Fine-tuning tasks: one module per task family, a registry of datasets, one shared loop.

``hanlm finetune|evaluate|predict`` (``hanlm.tasks.run``) is the entry point; docs/TASKS.md
describes every task, format and metric.
"""
