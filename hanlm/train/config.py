from hanlm.train.pretrain import PretrainConfig  # noqa: F401
