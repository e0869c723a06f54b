"""Image datasets: MNIST, CIFAR-10 and the DataModule they share."""
