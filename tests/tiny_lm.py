"""A randomly initialised GPT-2-shaped causal LM with a byte-level BPE trained on `texts` (seeded,
no LM training): the generator the ZeroGen tests sample from, in well under a second."""
from __future__ import annotations

from typing import Iterable

import torch


def random_gpt2(texts: Iterable[str], *, n_positions: int, n_embd: int, n_layer: int, vocab_size: int = 300,
                **config):
    """(model in eval mode, tokenizer); `config` goes to GPT2Config (e.g. tie_word_embeddings)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                                       n_head=2, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
                                       **config)).eval()
    return model, tok
