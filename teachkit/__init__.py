"""teachkit: the inner workings of deep-learning training, rebuilt on today's PyTorch."""
