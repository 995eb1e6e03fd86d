"""Experiments: multi-run protocols (pretrain x fine-tune x seeds, ablation rows x seeds) that write one results
table and report."""
from .ablation import Ablation, AblationConfig, AblationRow, parse_ood
from .enhance_bench import EnhanceBench, EnhanceBenchConfig
from .pretrain_ablation import DownstreamTask, PretrainAblation, PretrainAblationConfig, PretrainRow
from .ssl_grid import SSLGrid, SSLGridConfig, eval_sets, score_run, scored_run, train_and_score

__all__ = ["Ablation", "AblationConfig", "AblationRow", "DownstreamTask", "EnhanceBench", "EnhanceBenchConfig",
           "PretrainAblation", "PretrainAblationConfig", "PretrainRow", "SSLGrid",
           "SSLGridConfig", "eval_sets", "parse_ood", "score_run", "scored_run", "train_and_score"]
