"""Grid LSTM reference implementation."""
