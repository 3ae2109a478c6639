"""Paper (a): Shi et al., *Revisiting Over-smoothing in BERT from the Perspective of Graph*.

    measures  token-wise cosine similarity, d_M, attention λ, LayerNorm statistics,
              the per-layer contraction bound (spec §1.3-1.5)
    theory    random post-LN / pre-LN stacks: when do tokens collapse (spec §1.9)
    fusion    Concat / Max / Gate hierarchical fusion, registered in FUSIONS (§1.6)
    probe     a linear probe per layer (Fig. 1b)
    analysis  per-layer curves of real models on real sentences (Fig. 1a)
    stages    params sections and the `run` functions of the DVC stages

See docs/papers/oversmoothing.md.
"""
