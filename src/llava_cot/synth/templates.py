"""Wording of the synthetic world's answers: plan, caption and reasoning templates.

Only data lives here (the questions are in `phrasings.py`); the families pick one template of
each list with the seeded RNG and fill it with `str.format`. A few variants per slot give the
text some variety, while every variant keeps the same structure so that a tiny model can still
learn it. The plan restates the question in the canonical words whatever its wording, so the
rest of the answer never depends on how the question was put. Placeholders: {sg}/{pl} a filter
as a singular/plural noun phrase ("red square"/"red squares"), {desc} an object ("small red
square"), {where} its cell ("row 1, column 2"), {checks} the object against each value a
decision tests ("(red yes, square no)", "(row 2 yes, column 3 no)"), {n}/{k} numbers.
Not run directly.
"""

OPTIONS_HEADER = "Options:"

# ---------------------------------------------------------------------------------------------
# SUMMARY: the plan. Keys are families, or family/kind where a family asks several things;
# no two plans open alike (the tests tell a plan's family from its text).

PLAN = {
    "subtract": [
        "I will identify every object in the image, remove the ones named by each subtraction in turn, "
        "and count how many objects are left.",
        "To solve this, I will list the objects, apply the subtractions one at a time while keeping a "
        "running total, and report how many objects remain.",
        "I will go through the objects on the grid, take away those that each instruction names, and "
        "count what remains.",
    ],
    "count": [
        "I will count the {pl} by checking every object in the image in turn.",
        "To answer, I will look at each object on the grid, decide whether it is a {sg}, and keep a "
        "running count.",
        "I will identify all objects in the image and count how many of them are {pl}.",
    ],
    "total": [
        "I will count all the objects in the image, one at a time.",
        "To answer, I will go through the grid row by row and number every object I see.",
    ],
    "attribute": [
        "I will find the {ref} in the image and report its {attr}.",
        "To answer, I will check each object until I have found the {ref}, then state its {attr}.",
        "I will look through the objects on the grid, locate the {ref}, and read off its {attr}.",
    ],
    "compare": [
        "I will count the {a} and the {b} in the image and compare the two numbers.",
        "To answer, I will go through the objects, keep one count for {a} and one for {b}, and "
        "compare them.",
    ],
    "exist": [
        "I will check every object in the image to see whether any of them is a {sg}.",
        "To answer, I will go through the objects on the grid and look for a {sg}.",
    ],
    "which/count": [
        "I will count the {a} and the {b}, and name the side with {relation} of them.",
        "To answer, I will keep one count for {a} and one for {b}, then say which has {relation}.",
    ],
    "which/size": [
        "I will find the {ref1} and the {ref2}, compare their sizes, and name the {comparative} one.",
        "To answer, I will locate both the {ref1} and the {ref2} and see which of them is {comparative}.",
    ],
    "universal/same": [
        "I will read the {attr} of each of the {scope} and check whether they are all the same.",
        "To answer, I will note the {attr} of every one of the {scope} and see whether only one occurs.",
    ],
    "universal/quantifier": [
        "I will check each of the {scope}, decide whether it is {pred}, and see whether {quant} of them are.",
        "To answer, I will go through the {scope} one by one, count those that are {pred}, and apply {quant}.",
    ],
    "position/what": [
        "I will find the object at {cell} and name it.",
        "To answer, I will look for an object at {cell} and say what it is.",
    ],
    "position/attr": [
        "I will find the object at {cell} and report its {attr}.",
        "To answer, I will look up the object at {cell} and read off its {attr}.",
    ],
    "position/where": [
        "I will find the {ref} in the image and report where it is on the grid.",
        "To answer, I will look through the objects until I find the {ref}, then give its {place}.",
    ],
    "rowcol/count": [
        "I will count the {pl} in {line}, checking every object in turn.",
        "To answer, I will go through the objects, keep those in {line}, and count the {pl} among them.",
    ],
    "rowcol/exist": [
        "I will check every object to see whether any {sg} lies in {line}.",
        "To answer, I will go through the objects and look for a {sg} in {line}.",
    ],
    "rowcol/extreme": [
        "I will list the objects in {line} in order and take the {extreme} one.",
        "To answer, I will go through {line}, keep its objects in order, and name the {extreme} one.",
    ],
    "relation/yes": [
        "I will find the {ref1} and the {ref2} and check whether the first is {rel} the second.",
        "To answer, I will locate the {ref1} and the {ref2}, compare their cells, and decide if the first is {rel} the second.",
    ],
    "relation/what": [
        "I will find the {ref} and then look at the cell {rel} it.",
        "To answer, I will locate the {ref} and see what occupies the cell {rel} it.",
    ],
    "describe": [
        "I will describe the image by listing every object on the grid in reading order.",
        "To describe it, I will go through the grid row by row and name each object with its size, colour and shape.",
    ],
    "choice": [
        "Then I will pick the option that matches the result.",
        "Finally, I will match the result to one of the options.",
    ],
}

# ---------------------------------------------------------------------------------------------
# CAPTION: an intro, then every object in reading order with one line template per response

CAPTION_INTRO = [
    "The image shows {n} objects on a {grid} grid. Listed row by row from the top left:",
    "There are {n} objects in the image, placed on a {grid} grid. Going row by row from the top left:",
    "The image contains {n} objects arranged on a {grid} grid. Reading row by row:",
]
CAPTION_LINE = [
    "Row {row}, column {col}: a {desc}.",
    "At row {row}, column {col} there is a {desc}.",
]

# ---------------------------------------------------------------------------------------------
# REASONING: one sentence per object decision, with the running tally in it. The decision comes
# after {checks}, which compares the object with the filter one value at a time, so that each
# word the model writes needs one comparison only (a tiny model fails on the whole conjunction).
# What the last step needs (the relation, the quantifier) is restated next to the numbers.

REASON = {
    "subtract_open": ["I start with {n} objects.", "There are {n} objects to begin with."],
    "subtract_step": ["Step {i}: subtract all {pl}."],
    "subtract_hit": ["The {desc} at {where} {checks} is a {sg}, so it is removed; {left} left."],
    "subtract_miss": ["The {desc} at {where} {checks} is not a {sg}, so it stays."],
    "subtract_total": ["{before} - {removed} = {after}."],
    "subtract_end": ["So {objs} {be} left.", "After the subtractions, the number of objects left is {after}."],
    "count_open": ["I check each object in reading order.", "I go through the objects row by row."],
    "count_hit": ["The {desc} at {where} {checks} is a {sg}, so the count is {k}."],
    "count_miss": ["The {desc} at {where} {checks} is not a {sg}, so the count stays at {k}."],
    "count_end": ["In total I counted {k} {noun}.", "So the number of {pl} is {k}."],
    "total_step": ["The {desc} at {where} is object {k}."],
    "total_end": ["In total I counted {k} objects.", "So there are {k} objects in all."],
    "attribute_hit": ["The {desc} at {where} {checks} is the {ref}; its {attr} is {value}."],
    "attribute_miss": ["The {desc} at {where} {checks} is not the {ref}."],
    "attribute_end": ["So the {ref} is {article}{value}.", "Therefore the {attr} of the {ref} is {value}."],
    "compare_hit": ["The {desc} at {where} {checks} is a {sg}; {a}: {ca}, {b}: {cb}."],
    "compare_miss": ["The {desc} at {where} {checks} is neither a {a_sg} nor a {b_sg}."],
    "compare_end": ["The final counts are {a}: {ca} and {b}: {cb}. "
                    "{relation} {a} than {b} means {ca} {op} {cb}, which is {truth}, so the answer is {answer}."],
    "compare_same_end": ["The final counts are {a}: {ca} and {b}: {cb}. "
                         "As many {a} as {b} means {ca} = {cb}, which is {truth}, so the answer is {answer}."],
    "which_end": ["The final counts are {a}: {ca} and {b}: {cb}. "
                  "{cw} {op} {cl}, so there are {relation} {winner} than {loser}, and the answer is {winner}."],
    "which_miss": ["The {desc} at {where} {checks} is neither the {ref1} nor the {ref2}."],
    "which_size_end": ["The {ref1} is {s1} and the {ref2} is {s2}, so the {comparative} one is the {winner}."],
    "exist_hit": ["The {desc} at {where} {checks} is a {sg}."],
    "exist_miss": ["The {desc} at {where} {checks} is not a {sg}."],
    "exist_yes": ["I found {k} {noun}, so the answer is Yes."],
    "exist_no": ["None of the objects is a {sg}, so the answer is No."],
    "same_all": ["The {desc} at {where} has {attr} {value}."],
    "same_hit": ["The {desc} at {where} {checks} is a {scope}; its {attr} is {value}."],
    "same_end": ["The {attrs} seen are {values}, so {verdict}, and the answer is {answer}."],
    "quant_yes": ["The {desc} at {where} {checks} is {pred}."],
    "quant_no": ["The {desc} at {where} {checks} is not {pred}."],
    "quant_in_yes": ["The {desc} at {where} {checks} is a {scope}, and it is {pred}."],
    "quant_in_no": ["The {desc} at {where} {checks} is a {scope}, but it is not {pred}."],
    "quant_out": ["The {desc} at {where} {checks} is not a {scope}."],
    "quant_end": ["Out of {n} {scope_n}, {m} {be} {pred_m}. "
                  "{quant} means {rule}, which is {truth}, so the answer is {answer}."],
    "cell_words": ["{words} is {cell}."],
    "cell_hit": ["The {desc} at {where} {checks} is at {cell}."],
    "cell_miss": ["The {desc} at {where} {checks} is not at {cell}."],
    "cell_attr_hit": ["The {desc} at {where} {checks} is at {cell}; its {attr} is {value}."],
    "cell_found": ["So the object at {cell} is a {desc}."],
    "cell_empty": ["No object is at {cell}, so the cell is empty."],
    "cell_attr_end": ["So the {attr} of the object at {cell} is {value}."],
    "ref_hit": ["The {desc} at {where} {checks} is the {ref}."],
    "ref_miss": ["The {desc} at {where} {checks} is not the {ref}."],
    "where_end": ["So the {ref} is at {cell}.", "Therefore the {ref} sits at {cell}."],
    "line_end": ["So the {ref} is in {line}."],
    "line_words": ["{words} is {line}."],
    "line_hit": ["The {desc} at {where} {checks} is {what}in {line}, so the tally is {k}."],
    "line_miss": ["The {desc} at {where} {checks} is not {what}in {line}, so the tally stays at {k}."],
    "line_count_end": ["In total I counted {k} {noun} there."],
    "line_exist_hit": ["The {desc} at {where} {checks} is a {sg} in {line}."],
    "line_exist_miss": ["The {desc} at {where} {checks} is not a {sg} in {line}."],
    "line_exist_yes": ["So there is a {sg} in {line}, and the answer is Yes."],
    "line_exist_no": ["None of the objects is a {sg} in {line}, so the answer is No."],
    "line_in": ["The {desc} at {where} {checks} is in {line}."],
    "line_out": ["The {desc} at {where} {checks} is not in {line}."],
    "extreme_end": ["The objects in {line}, {order}, are {listed}, so the {extreme} one is the {desc}."],
    "relation_end": ["The {ref1} is in {axis} {v1} and the {ref2} in {axis} {v2}. "
                     "{rel} means {v1} {op} {v2}, which is {truth}, so the answer is {answer}."],
    "relation_next_end": ["The {ref1} is at {cell1} and the {ref2} at {cell2}. Next to means one step apart "
                          "in the same row or column, which is {truth}, so the answer is {answer}."],
    "relation_cell": ["The cell {rel} {cell} is {target}."],
    "relation_next": ["The cells next to {cell} are {cells}; only one of them holds an object."],
    "relation_found": ["The caption lists a {desc} at {target}, so the answer is a {desc}."],
    "relation_empty": ["The caption lists no object at {target}, so there is nothing there."],
    "describe_step": ["Object {k} is a {desc} at {where}."],
    "describe_end": ["That makes {n} objects in all."],
    "choice_scan": ["Checking the options:\n{scan}."],  # "A. 3, no\nB. 1, yes": the question's own form
    "choice_end": ["The answer {value} is option {letter}.", "This matches option {letter}, {value}."],
}
