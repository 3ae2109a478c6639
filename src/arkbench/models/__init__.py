"""The shared BERT-family encoder, its heads and checkpoint loading."""
from .config import EncoderConfig
from .encoder import Encoder, EncoderOutput
from .heads import MaskedLM, ModelOutput, SequenceClassifier, SpanExtractor, build_fusion
from .loading import CHECKPOINTS, from_pretrained, load_config, load_weights, save_pretrained
from .mixers import AttentionBias, LightConvMixer, MultiHeadSelfAttention
from .registry import ATTENTION_BIASES, FUSIONS, MIXERS, register_attention_bias, register_fusion, register_mixer

__all__ = [
    "EncoderConfig", "Encoder", "EncoderOutput", "MaskedLM", "SequenceClassifier", "SpanExtractor",
    "ModelOutput", "build_fusion", "CHECKPOINTS", "from_pretrained", "load_config", "load_weights",
    "save_pretrained", "AttentionBias", "LightConvMixer", "MultiHeadSelfAttention", "MIXERS",
    "FUSIONS", "ATTENTION_BIASES", "register_mixer", "register_fusion", "register_attention_bias",
]
