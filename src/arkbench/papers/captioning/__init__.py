"""Unsupervised cross-lingual image captioning (UNISON, AAAI 2022; arXiv 2010.01288).

    graph.py           one scene-graph schema (objects, attributes, relations) + JSON lines io
    sentence_graphs.py English sentence -> graph (sng_parser on spaCy en_core_web_sm)
    synthetic.py       the synthetic world (scenes, two-language captions, renders, noisy detector)
    detector.py        NanoDet-m TF.js graph on torch + decoding + NMS;  fetch.py gets its files
    image_graphs.py    detections + pixels -> image graph (colour/size attributes, geometric relations)
    worlds.py          synthetic or real (Flickr8k, Flickr8k-CN, Tatoeba) data, disjointness check
    text.py lexicon.py jieba / vocabularies;  CC-CEDICT English -> Chinese node dictionary
    model.py           graph conv encoder, attention pooling, HGM + self-gate, LSTM decoder, exp-KL
    phase1.py gan.py   phase 1 (cross-lingual auto-encoding), phase 2 (per-component CycleGAN)
    evaluate.py        BLEU-1..4 / METEOR / ROUGE-L / CIDEr (pycocoevalcap), domain gap
    training.py        the drivers behind the stages;  stages.py: params sections + run functions
"""
