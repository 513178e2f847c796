"""The model registry: what models exist, where their files are, and how to load them (see registry.toml)."""
from .registry import ModelSpec, all_models, get_model, model_path, verify_model

__all__ = ["ModelSpec", "all_models", "get_model", "model_path", "verify_model"]
