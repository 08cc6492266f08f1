"""ezctl: the kubeasz-like command line of kubeasz.network."""
