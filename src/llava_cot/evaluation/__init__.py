"""Evaluation: a model (and an inference-time search) scored on benchmarks, resumably, with the
figures papers report and accuracy-against-compute curves.

    llava-cot eval --model M --bench B [--data PATH] [--search NAME --beam N] [--out DIR] [--limit N]
    llava-cot eval score --bench B --predictions FILE [--data PATH] [--json] [--out DIR]
    llava-cot eval plot DIR [DIR ...] --out compute.png

B is a registered benchmark (llava_cot.benches: synth-test, synth-hard, mmstar, ...; `--data`
for those read from a file) or a LLaVA-CoT data file whose records carry a gold "answer". Greedy
decoding runs in batches; a search (`--search stage_beam --beam 4`) answers one item at a time and
each answer's cost (tokens generated, forward passes, judge calls, seconds) is kept beside it.

With --out DIR an eval writes DIR/run.json (its settings), DIR/predictions.jsonl (a row per item,
appended as items finish: the index, the response, its four stages, the answer, whether it is
correct, and the cost), then DIR/metrics.json, DIR/metrics.md (a table per category) and
DIR/accuracy_by_category.png. Rerun the same command after a kill and it goes on from where it
stopped; a rerun with other settings is refused.

| module | what |
| --- | --- |
| data | benches by name, and a LLaVA-CoT data file as a bench |
| store | the run directory: settings, predictions appended, a cut-off line repaired |
| run | `llava-cot eval`: batched greedy or per-item search, resumable |
| score | `llava-cot eval score`: a predictions file scored without a model |
| metrics | the bench's summary with format validity and mean costs; metrics.json/.md |
"""
