"""The teacher pipeline: four-stage training data from any VQA set and any OpenAI-compatible teacher.

    llava-cot data import --from MMStar.tsv --out runs/vqa            # VQA rows -> LLaVA records, plain answers
    llava-cot data annotate --input runs/vqa/data.jsonl --images runs/vqa \\
        --teacher-url https://api.openai.com/v1 --teacher-model gpt-4o --out runs/cot.jsonl

The pieces, one module each:

    sources.py    reading VQA layouts (VLMEvalKit TSV, parquet, `save_to_disk` folders, LLaVA JSONL, CSV)
    importer.py   `data import`: those rows as LLaVA-layout records, images written beside them
    prompt.py     the teacher prompt (a replaceable template) and the stage-by-stage requests
    client.py     the teacher: concurrent requests, retries with backoff (Retry-After), rate and token limits
    filters.py    what is kept: four stages, the gold answer, no leaked hint; the LLM judge's prompt
    item.py       one record: each human/gpt pair asked, checked, retried with new seeds
    journal.py    the output files: one fsynced line per finished item, resumed and repaired on rerun
    annotate.py   `data annotate`: the run
    oracle.py     a teacher that knows the answers, for dry runs, the fault tests and the benchmark

docs/data.md describes the prompt, the filters, resuming, and pointing the pipeline at GPT-4o,
vLLM or `llava-cot serve`.
"""
