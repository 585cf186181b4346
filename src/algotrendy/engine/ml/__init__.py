"""Machine learning in the engine (pure, synchronous): features and what training and inference build on."""
