"""Networks built on the grid and the paper's baselines: image classifiers, sequence
models, seq2seq and the Reencoder, and decoding. Exported from `gridlstm.nn`."""
