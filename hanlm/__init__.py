"""hanlm: raw Korean text to a trained, evaluated, shareable Korean BERT."""

__version__ = "0.1.0"
