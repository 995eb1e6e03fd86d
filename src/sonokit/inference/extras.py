"""The extra maps a segmentation model may return besides its logits (torch-free, for the file writers)."""

#: model outputs kept as extra maps: output name -> (map name, the output is a logit)
EXTRA_OUTPUTS = {"uncertainty": ("uncertainty", False), "fp_logits": ("fp", True), "fn_logits": ("fn", True),
                 "initial_logits": ("initial", True)}
