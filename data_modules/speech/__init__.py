"""Speech: frame classification (HW1P2), utterance sequences (HW3P2), course layouts, demo
corpus."""
