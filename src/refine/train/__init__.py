"""One trainer for every stage (spec 5): tiny-base pretraining, mid-training, nested post-training and
test-time training, with exact resume and torchrun data parallelism.

Modules: `config` (stage dataclasses), `trainer` (loop, data order, precision), `updates` (NTP/SFT, REFINE,
nested, validation), `optim` (AdamW, schedule, the optimizer step), `state` (atomic checkpoint and resumable
state), `distributed` (ranks, gradient averaging), `metrics` (JSONL, progress bar), `data` (token rows),
`stages` (pretrain / mid / post / ttt entry points).
"""
