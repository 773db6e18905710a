"""PyTorch layers (full, bilinear, low-rank), the architecture spec, the model builder, exact costs."""
