"""Data layer: tokenizer, synthetic corpus, RULER NIAH / QA, LongBench, batching."""
