"""Native Swin Transformer V1/V2 models, their variant registry and checkpoint loading."""

from .checkpoint import Weights, build_model, convert_official_state_dict, load_strict, read_checkpoint
from .registry import VARIANTS, SwinConfig, get_config
from .swin import FeatureMaps, SwinTransformer

__all__ = ["VARIANTS", "FeatureMaps", "SwinConfig", "SwinTransformer", "Weights", "build_model", "convert_official_state_dict",
           "get_config", "load_strict", "read_checkpoint"]
