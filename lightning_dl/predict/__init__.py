"""Predictions in dataset order and the Kaggle submissions built from them."""
