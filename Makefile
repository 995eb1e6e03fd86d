# The README's two commands: `make demo` and `make test`. Each installs everything it needs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SONOKIT := $(VENV)/bin/sonokit
# torch is installed first and pinned: on the project machines these wheels lie on the local disk.
# Override on other machines, e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= demo_out
DEMO_CONFIG ?= configs/demo_phantom_cpu.yaml
TEST_WORKERS ?= 2

.PHONY: install demo test bench clean

install: $(VENV)/.sonokit-installed

$(VENV)/.sonokit-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# phantom data -> split -> train -> evaluate -> segment -> HTML report, then classification: train -> evaluate ->
# report, then SSL: pretrain -> fine-tune -> in-domain + out-of-distribution table and report, then enhancement:
# train -> enhance -> enhance-bench, then SF-RecSAM: two stages -> evaluate with uncertainty maps -> report, then
# A-ViT: shards -> pretrain (arl) -> linear probe -> evaluate with the organ
demo: install
	rm -rf $(DEMO_DIR)
	$(SONOKIT) simulate phantom --n 160 --size 160 --seed 0 --out $(DEMO_DIR)/phantom
	$(SONOKIT) data check $(DEMO_DIR)/phantom --format folder
	$(SONOKIT) data split $(DEMO_DIR)/phantom --format folder --seeds 0 --out $(DEMO_DIR)/phantom_split.json
	$(SONOKIT) train segment --config $(DEMO_CONFIG) --out $(DEMO_DIR)/run \
		--set data.root=$(DEMO_DIR)/phantom --set data.split=$(DEMO_DIR)/phantom_split.json
	$(SONOKIT) evaluate --checkpoint $(DEMO_DIR)/run/checkpoints/best.ckpt --split test
	$(SONOKIT) segment $(DEMO_DIR)/phantom/images/phantom_0000.png $(DEMO_DIR)/phantom/images/phantom_0001.png \
		--checkpoint $(DEMO_DIR)/run/checkpoints/best.ckpt --out $(DEMO_DIR)/segmented
	$(SONOKIT) report $(DEMO_DIR)/run
	$(SONOKIT) train classify --config configs/demo_classify_cpu.yaml --out $(DEMO_DIR)/classify \
		--set data.root=$(DEMO_DIR)/phantom --set data.split=$(DEMO_DIR)/phantom_split.json
	$(SONOKIT) evaluate --checkpoint $(DEMO_DIR)/classify/checkpoints/best.ckpt --split test
	$(SONOKIT) report $(DEMO_DIR)/classify
	$(SONOKIT) experiment ssl-grid --config configs/demo_ssl_grid_cpu.yaml --out $(DEMO_DIR)/ssl_grid \
		--set "finetune_set=[data.root=$(DEMO_DIR)/phantom, data.split=$(DEMO_DIR)/phantom_split.json]" \
		--set "pretrain_set=[data.root=$(DEMO_DIR)/phantom, data.split=$(DEMO_DIR)/phantom_split.json]"
	$(SONOKIT) train enhance --config configs/enhance_phantom_cpu.yaml --out $(DEMO_DIR)/enhance \
		--set data.root=$(DEMO_DIR)/phantom --set data.split=$(DEMO_DIR)/phantom_split.json
	$(SONOKIT) enhance $(DEMO_DIR)/phantom/images/phantom_0000.png --checkpoint $(DEMO_DIR)/enhance/checkpoints/best.ckpt \
		--out $(DEMO_DIR)/enhanced
	$(SONOKIT) experiment enhance-bench --config configs/demo_enhance_bench_cpu.yaml --out $(DEMO_DIR)/enhance_bench \
		--set frames.root=$(DEMO_DIR)/phantom --set frames.split=$(DEMO_DIR)/phantom_split.json \
		--set "enhancers=[{name: dncnn_small, checkpoint: $(DEMO_DIR)/enhance/checkpoints/best.ckpt}]" \
		--set "segmentation=[{name: phantom, config: configs/demo_phantom_cpu.yaml, checkpoint: $(DEMO_DIR)/run/checkpoints/best.ckpt, set: [data.root=$(DEMO_DIR)/phantom, data.split=$(DEMO_DIR)/phantom_split.json], max_images: 24}]"
	$(SONOKIT) train segment --config configs/demo_sfrecsam_cpu.yaml --out $(DEMO_DIR)/sfrecsam \
		--set data.root=$(DEMO_DIR)/phantom --set data.split=$(DEMO_DIR)/phantom_split.json
	$(SONOKIT) evaluate --checkpoint $(DEMO_DIR)/sfrecsam/corrector/checkpoints/best.ckpt --split test --save-uncertainty
	$(SONOKIT) report $(DEMO_DIR)/sfrecsam
	$(SONOKIT) data shard phantom=$(DEMO_DIR)/phantom --split phantom=$(DEMO_DIR)/phantom_split.json --out $(DEMO_DIR)/shards
	$(SONOKIT) pretrain --config configs/demo_avit_cpu.yaml --out $(DEMO_DIR)/avit --set data.root=$(DEMO_DIR)/shards
	$(SONOKIT) train classify --config configs/demo_classify_cpu.yaml --out $(DEMO_DIR)/avit_probe \
		--set data.root=$(DEMO_DIR)/phantom --set data.split=$(DEMO_DIR)/phantom_split.json --set data.image_size=64 \
		--set model.encoder=avit_tiny_patch16 --set "model.encoder_kwargs={acdt_blocks: last_half}" \
		--set model.encoder_checkpoint=$(DEMO_DIR)/avit/encoder.safetensors --set linear_probe=true --set optim.epochs=4
	$(SONOKIT) evaluate --checkpoint $(DEMO_DIR)/avit_probe/checkpoints/best.ckpt --split test --organ dataset
	@echo "reports: $(DEMO_DIR)/run/report.html, $(DEMO_DIR)/classify/report.html, $(DEMO_DIR)/ssl_grid/report.html, $(DEMO_DIR)/enhance_bench/report.html and $(DEMO_DIR)/sfrecsam/report.html"

test: install
	$(PY) -m ruff check src tests benchmarks
	# two workers (the CI machine has 2 cores), one torch thread each: 11.5 min in one process, same in two
	# workers of 2 threads each (oversubscribed); TEST_ARGS adds pytest options, e.g. TEST_ARGS='-m "not slow"'
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) $(TEST_ARGS)

bench: install
	$(PY) benchmarks/busi_supervised.py --preset cpu

clean:
	rm -rf $(DEMO_DIR) runs .pytest_cache
