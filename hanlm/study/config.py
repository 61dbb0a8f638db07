from hanlm.study.run import StudyConfig  # noqa: F401
