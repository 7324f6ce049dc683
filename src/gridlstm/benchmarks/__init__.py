"""Speed measurements: the backends against `torch.nn.LSTM` and the public peer, each
preset's training step, the GPU speed targets and the GPU check's verdict. Apart from the
evidence engine (`gridlstm.analysis`), which reads records these do not write."""
