"""`llava-cot eval --model M --bench B`: accuracy of a model on a benchmark, per category, with
format validity and the cost of each answer; resumable. The code is in llava_cot.evaluation;
this module keeps the command's name.

    llava-cot eval --model runs/tiny --bench synth-test --limit 1000 --out runs/tiny/eval
    llava-cot eval --bench synth-hard --limit 200 --search stage_beam --beam 4 --out runs/eval-stage4
"""

from llava_cot.evaluation.run import EvalConfig, evaluate, main

__all__ = ["EvalConfig", "evaluate", "main"]
