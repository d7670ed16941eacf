"""The paper's tables, figures and claim checks, regenerated from evaluation records and training metrics.

Inputs (docs/design.md): evaluation records ``evals/{arch}/{model}/{family}/{task}_{length}_ttt-{ttt}.json``
and training metrics ``train/{arch}/{model}/metrics.jsonl``. Everything here is a pure function of those
files plus the published numbers (``published.yaml``).

Model names read by the report (design.md, with the ablation names this package expects):

* ``base``; ``mid-{method}-s{seed}`` with method ``sft``, ``refine`` or an ablation ``refine_{variant}``:
  ``refine_binary`` (Table 6, binary reward), ``refine_uniform`` / ``refine_argmax`` / ``refine_argmin``
  (Table 7, position selection), ``refine_k{1,3,7}`` and ``refine_c{2,4,6}`` (Fig. 5; plain ``refine`` is
  the default k=5, c=8, cosine reward, entropy-weighted selection);
* ``post-{task}-{length}-{method}-s{seed}`` with method ``sft``, ``nested_sft``, ``nested_refine``; such a
  model only counts on its own QA task and length;
* test-time training is the record's ``ttt`` field: ``none``, ``sft``, ``refine`` (the paper's binary
  reward) and ``refine_cosine`` (Table E.2, TTT with the cosine reward R^phi).

Columns use each record's ``length_label`` (the paper's 4K/8K/16K); where the evaluated ``length`` differs
(the tiny replica's 1K/2K/4K) the header reads e.g. ``1K (≙4K)``.
"""
