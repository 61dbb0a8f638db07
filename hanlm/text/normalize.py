def normalize(text: str) -> str:
    raise NotImplementedError
