"""Serving: model repositories for Triton Inference Server."""
