"""Batches built at once on the device, their augmentation, and their exact-resumable order."""
