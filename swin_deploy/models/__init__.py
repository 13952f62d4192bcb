"""Native Swin Transformer V1/V2 models, their variant registry and checkpoint loading."""

from .checkpoint import Weights, build_model, config_for, convert_official_state_dict, load_strict, read_checkpoint
from .hf import convert_hf_state_dict
from .registry import VARIANTS, Preprocessing, SwinConfig, get_config
from .swin import FeatureMaps, PixelInput, SwinTransformer, output_module

__all__ = ["VARIANTS", "FeatureMaps", "PixelInput", "Preprocessing", "SwinConfig", "SwinTransformer", "Weights",
           "build_model", "config_for", "output_module", "convert_hf_state_dict", "convert_official_state_dict",
           "get_config", "load_strict", "read_checkpoint"]
