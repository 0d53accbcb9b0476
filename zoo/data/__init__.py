"""Data, from a source to batches of ids:

    sources (zoo.data.sources, zoo.data.stanford) -> checked splits (zoo.data.splits)
      -> normalized text (zoo.data.text) -> a SentencePiece tokenizer trained on train only (zoo.data.tokenizer)
      -> ids (zoo.data.segmenter) -> encoded, cached splits (zoo.data.encoding)
      -> length-bucketed batches (zoo.data.batching)

zoo.data.cache is where the parsed data, tokenizers and encoded splits are kept; zoo.data.summary is `zoo data`.
"""
