"""The autoregressive family: character/byte tokenizers, LSTM and Transformer language models,
the shared sampling filters (temperature, top-k, top-p), and the family glue."""
