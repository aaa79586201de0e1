"""Probes: short, measured training experiments on the user's data (data loading,
synthetic data, the probe suite, framework runners)."""
