"""Pure builders: Kubernetes manifests as functions of a TrainingJob spec."""
