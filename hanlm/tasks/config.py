from hanlm.tasks.run import EvaluateConfig, FinetuneConfig, PredictConfig  # noqa: F401
