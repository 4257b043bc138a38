"""Run by tests/test_train.py under torchrun: one training stage on every rank; each rank writes
its logged rows to a JSON file.  python tests/ddp_worker.py OUT_DIR STAGE [key=value ...]"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from train.config import load_config
from train.stage1 import run_stage1
from train.stage2 import run_stage2

out, stage, *overrides = sys.argv[1:]
history: list = []
(run_stage1 if stage == "1" else run_stage2)(load_config(None, overrides), progress=False, history=history)
rank = dist.get_rank() if dist.is_initialized() else 0
Path(out, f"rank{rank}-stage{stage}.json").write_text(json.dumps(history))
