"""mis-data: build multi-image safety (MIS) datasets for vision-language models."""

__version__ = "0.1.0"
