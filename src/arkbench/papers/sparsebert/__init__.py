"""Paper (b): SparseBERT (Shi et al., ICML 2021), spec bert_variants.md §2.

    patterns.py   the fixed masks the paper compares (no-diagonal, Strided, Fixed, Longformer,
                  LogSparse, BigBird, Star) as bool [T, T] tensors + their sparsity
    dam.py        the Differentiable Attention Mask (DAM_u, DAM_s): hard Gumbel-sigmoid with a
                  straight-through gradient, temperature schedule, lambda * ||M||_1 aux loss
    masks.py      both registered as encoder attention biases ("sparse_pattern", "dam_u", "dam_s")
    protocol.py   the two-stage protocol: learn the mask (stage 1), freeze it and train with it fixed
    analysis.py   importance analysis: keep-probabilities over pre-training, diagonal rank, heat maps
"""
