"""Experiments: multi-run protocols (pretrain x fine-tune x seeds) that write one results table and report."""
from .ssl_grid import SSLGrid, SSLGridConfig, score_run, train_and_score

__all__ = ["SSLGrid", "SSLGridConfig", "score_run", "train_and_score"]
