"""Experiments: multi-run protocols (pretrain x fine-tune x seeds) that write one results table and report."""
from .enhance_bench import EnhanceBench, EnhanceBenchConfig
from .ssl_grid import SSLGrid, SSLGridConfig, score_run, train_and_score

__all__ = ["EnhanceBench", "EnhanceBenchConfig", "SSLGrid", "SSLGridConfig", "score_run", "train_and_score"]
