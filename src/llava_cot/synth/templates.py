"""Wording of the synthetic world: question, plan, caption and reasoning templates.

Only data lives here; `questions.py` picks one template of each list with the seeded RNG and
fills it with `str.format`. A few variants per slot give the text some variety, while every
variant keeps the same structure so that a tiny model can still learn it. Placeholders:
{sg}/{pl} a filter as a singular/plural noun phrase ("red square"/"red squares"), {desc} an
object ("small red square"), {where} its cell ("row 1, column 2"), {checks} the object against
each value a decision tests ("(red yes, square no)"), {n}/{k} numbers.
Not run directly.
"""

# ---------------------------------------------------------------------------------------------
# Questions (the test suite parses these back, so new variants need a matching test pattern)

QUESTION = {
    "subtract_step": ["Subtract all {pl}."],
    "subtract_end": ["How many objects are left?", "How many objects remain?"],
    "count": ["How many {pl} are there?", "How many {pl} are in the image?"],
    "attribute": ["What {attr} is the {ref}?", "What is the {attr} of the {ref}?"],
    "more": ["Are there more {a} than {b}?", "Is the number of {a} greater than the number of {b}?"],
    "fewer": ["Are there fewer {a} than {b}?", "Is the number of {a} smaller than the number of {b}?"],
    "exist": ["Is there a {sg}?", "Are there any {pl}?"],
}
OPTIONS_HEADER = "Options:"

# ---------------------------------------------------------------------------------------------
# SUMMARY: the plan, one of these per family

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
    "attribute_hit": ["The {desc} at {where} {checks} is the {ref}; its {attr} is {value}."],
    "attribute_miss": ["The {desc} at {where} {checks} is not the {ref}."],
    "attribute_end": ["So the {ref} is {article}{value}.", "Therefore the {attr} of the {ref} is {value}."],
    "compare_hit": ["The {desc} at {where} {checks} is a {sg}; {a}: {ca}, {b}: {cb}."],
    "compare_miss": ["The {desc} at {where} {checks} is neither a {a_sg} nor a {b_sg}."],
    # The relation asked is restated next to the numbers, so the last step is one comparison.
    "compare_end": ["The final counts are {a}: {ca} and {b}: {cb}. "
                    "{relation} {a} than {b} means {ca} {op} {cb}, which is {truth}, so the answer is {answer}."],
    "exist_hit": ["The {desc} at {where} {checks} is a {sg}."],
    "exist_miss": ["The {desc} at {where} {checks} is not a {sg}."],
    "exist_yes": ["I found {k} {noun}, so the answer is Yes."],
    "exist_no": ["None of the objects is a {sg}, so the answer is No."],
    "choice_scan": ["Checking the options:\n{scan}."],  # "A. 3, no\nB. 1, yes": the question's own form
    "choice_end": ["The answer {value} is option {letter}.", "This matches option {letter}, {value}."],
}
