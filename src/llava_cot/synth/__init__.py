"""The synthetic visual-reasoning world: CLEVR-Math-like scenes on a 4x4 grid, rendered with PIL,
with questions whose four-stage answers are derived from the scene graph.

    llava-cot data synth --out DIR --n N [--split train|test|hard] [--seed S]

Modules: `scene` (objects, sampling, drawing), `questions` (families and their annotations),
`templates` (wording), `generate` (the command and the `generate(cfg)` library function).
Importing this package imports nothing heavy; `scene` needs Pillow.
"""
