"""The shared BERT-family encoder, its heads and checkpoint loading."""
from .config import EncoderConfig
from .encoder import Encoder, EncoderOutput, collect_aux_losses
from .heads import MaskedLM, ModelOutput, SequenceClassifier, SpanExtractor, build_fusion, training_loss
from .loading import CHECKPOINTS, from_pretrained, load_config, load_weights, save_pretrained
from .mixers import AttentionBias, FixedMask, LightConvMixer, MultiHeadSelfAttention, mask_to_bias
from .registry import ATTENTION_BIASES, FUSIONS, MIXERS, register_attention_bias, register_fusion, register_mixer

__all__ = [
    "EncoderConfig", "Encoder", "EncoderOutput", "MaskedLM", "SequenceClassifier", "SpanExtractor",
    "ModelOutput", "build_fusion", "CHECKPOINTS", "from_pretrained", "load_config", "load_weights",
    "save_pretrained", "AttentionBias", "LightConvMixer", "MultiHeadSelfAttention", "MIXERS",
    "FUSIONS", "ATTENTION_BIASES", "register_mixer", "register_fusion", "register_attention_bias",
    "FixedMask", "mask_to_bias", "collect_aux_losses", "training_loss",
]
