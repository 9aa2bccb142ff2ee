"""The synthetic visual-reasoning world: CLEVR-Math-like scenes on a 4x4 grid, rendered with PIL,
with questions whose four-stage answers are derived from the scene graph.

    llava-cot data synth --out DIR --n N [--split train|test|hard|heldout] [--seed S]

Modules: `scene` (objects, sampling, drawing), `questions` (the family registry, choice, the
four-stage annotation) with the families in `counting`, `properties` and `spatial` (shared
pieces in `core`), `phrasings` (how questions are asked) and `wording` (their grammar, the
held-out phrasings, noun phrases), `templates` (how answers are worded), `critiques` (judge and
verifier items), `world` (does an image look like this world?), `generate` (the command and
the `generate(cfg)` library function). Importing this package imports nothing heavy; `scene`
needs Pillow.
"""
