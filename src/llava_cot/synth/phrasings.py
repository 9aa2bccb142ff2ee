"""Question frames of the synthetic world: the many ways people ask about such scenes.

Only data lives here; `wording.py` expands each frame ("[a|b]" alternatives, "{slot}" content,
macros {PL} {SG} {A_SG} {REF} {REF1} {REF2} {IMAGE}) and holds out some of its phrasings, and
the families in `counting.py`, `properties.py` and `spatial.py` fill the slots. The first
phrasing of each key's first frame, and the PINNED ones, are always trained.
Slots: {pl}/{sg} a filter's noun phrase, {pred_pl} the same as a predicate ("large and red"),
{attr} colour/shape/size, {a}/{b} two classes ("circles", "red objects"), {cell} a grid cell
("the top left corner", "row 2, column 3"), {line} a row or column ("the top row",
"column 2"), {rel} a relation ("to the left of"), {extreme} "leftmost"..., {scope_pl}/
{scope_sg} the objects a universal question ranges over, {pred_sg} what it asks of
them ("red", "a square"), {removals} a list of removals ("all red squares and every small
circle"), {removed} the same without quantifiers.
The test suite reads every phrasing back with its own parser: a new frame needs it to follow.
Not run directly.
"""

QUESTIONS: dict[str, list[str]] = {
    # --- counting
    "total": [
        "How many [objects|shapes|things|items] are [there|in the {IMAGE}|there in the {IMAGE}|there in total|shown]?",
        "How many [objects|shapes|things|items] [can you see|do you see|does the {IMAGE} [show|contain]]?",
        "What is the [total |]number of [objects|shapes|things|items][| in the {IMAGE}]?",
        "Count [the objects|the shapes|all the objects|all the shapes|the things][| in the {IMAGE}].",
        "[Tell me|Say] how many [objects|shapes|things] there are[| in the {IMAGE}].",
        "In the {IMAGE}, how many [objects|shapes|things] are there?",
        "What number of [objects|shapes|things] [are there|can you see]?",
        "How many objects [does the grid [have|hold]|are on the grid]?",
    ],
    "count": [
        "How many {PL} are [there|in the {IMAGE}|there in the {IMAGE}|shown|visible]?",
        "How many {PL} [can you see|do you see|does the {IMAGE} [show|contain]]?",
        "What is the number of {PL}[| in the {IMAGE}]?",
        "Count the {PL}[| in the {IMAGE}].",
        "[Tell me|Say] how many {PL} there are[| in the {IMAGE}].",
        "In the {IMAGE}, how many {PL} are there?",
        "What number of {PL} [are there|can you see]?",
        "How many of the [objects|shapes] are {pred_pl}?",
        "Number of {PL}?",
    ],
    "exist": [
        "Is there [{A_SG}|any {SG}][| in the {IMAGE}]?",
        "Are there [any |]{PL}[| in the {IMAGE}]?",
        "[Do|Can] you see [{A_SG}|any {PL}]?",
        "Does the {IMAGE} [contain|show|have] [{A_SG}|any {PL}]?",
        "Is there {A_SG} [present|visible][| in the {IMAGE}]?",
        "Is there at least one {SG}?",
        "[Tell me|Say] whether there is {A_SG}[| in the {IMAGE}].",
        "Are any {PL} [present|visible|shown]?",
        "Can you find {A_SG}?",
    ],
    "attribute": [
        "What {attr} is the {REF}?",
        "What is the {attr} of the {REF}?",
        "Which {attr} is the {REF}?",
        "What {attr} does the {REF} have?",
        "[Tell me|Name] the {attr} of the {REF}.",
        "The {REF} is what {attr}?",
        "What is the {ref}'s {attr}?",
        "[Can you tell me|Do you know] what {attr} the {REF} is?",
    ],
    # --- removal: steps then a question, or one sentence
    "subtract_step": [
        "Subtract [all {PL}|all the {PL}|every {SG}].",
        "Remove [all {PL}|all the {PL}|every {SG}|the {PL}].",
        "Take away [all {PL}|all the {PL}|every {SG}|the {PL}].",
        "[Delete|Get rid of|Throw out] [all {PL}|all the {PL}|every {SG}|the {PL}].",
    ],
    "subtract_end": [
        "How many [objects|shapes|things|] [are left|remain|are there now|are still there]?",
        "What is the number of [objects|shapes] [left|remaining|that remain]?",
        "Count the [objects|shapes] that [are left|remain].",
        "How many [objects|shapes] do you have left?",
    ],
    "subtract_one": [
        "If you [take away|remove|subtract] {removals}, how many [objects|shapes|] [are left|remain]?",
        "How many objects [are left|remain] after [removing|taking away|subtracting] {removals}?",
        "After [removing|taking away|you remove] {removals}, how many objects [are left|remain]?",
        "How many objects [remain|are left] [once|when|if] {removed} [are|have been] [removed|taken away]?",
    ],
    # --- comparisons, answered Yes or No
    "compare_more": [
        "Are there more {a} than {b}?",
        "Is the number of {a} [greater|larger|bigger|higher] than the number of {b}?",
        "Do the {a} outnumber the {b}?",
        "Are there more {a} than there are {b}?",
        "Does the {IMAGE} [show|contain|have] more {a} than {b}?",
        "Are {a} more [numerous|common] than {b}?",
    ],
    "compare_fewer": [
        "Are there fewer {a} than {b}?",
        "Is the number of {a} [smaller|less|lower] than the number of {b}?",
        "Are there less {a} than {b}?",
        "Are there fewer {a} than there are {b}?",
        "Does the {IMAGE} [show|contain|have] fewer {a} than {b}?",
        "Are {a} less [numerous|common] than {b}?",
    ],
    "compare_same": [
        "Are there as many {a} as {b}?",
        "Is the number of {a} [the same as|equal to] the number of {b}?",
        "Are there the same number of {a} and {b}?",
        "Are there equally many {a} and {b}?",
        "Do the {a} and the {b} [have the same count|appear equally often]?",
    ],
    # --- comparisons answered by naming one side
    "which_more": [
        "Are there more {a} or [more |]{b}?",
        "Which are there more of, {a} or {b}?",
        "Which is more common, {a} or {b}?",
        "What is there more of, {a} or {b}?",
        "Are {a} or {b} more [common|numerous]?",
        "Which [group|kind] is larger, the {a} or the {b}?",
    ],
    "which_fewer": [
        "Are there fewer {a} or [fewer |]{b}?",
        "Which are there fewer of, {a} or {b}?",
        "Which is less common, {a} or {b}?",
        "What is there less of, {a} or {b}?",
        "Are {a} or {b} less [common|numerous]?",
        "Which [group|kind] is smaller, the {a} or the {b}?",
    ],
    "which_bigger": [
        "Which is [bigger|larger], the {REF1} or the {REF2}?",
        "Is the {REF1} or the {REF2} [bigger|larger]?",
        "Which of the two is [bigger|larger], the {REF1} or the {REF2}?",
        "Which object is [bigger|larger]: the {REF1} or the {REF2}?",
    ],
    "which_smaller": [
        "Which is smaller, the {REF1} or the {REF2}?",
        "Is the {REF1} or the {REF2} smaller?",
        "Which of the two is smaller, the {REF1} or the {REF2}?",
        "Which object is smaller: the {REF1} or the {REF2}?",
    ],
    # --- universal questions, answered Yes or No
    "same": [
        "Are all the {scope_pl} the same {attr}?",
        "Do all the {scope_pl} have the same {attr}?",
        "Are the {scope_pl} all the same {attr}?",
        "Is every {scope_sg} the same {attr}?",
        "Do the {scope_pl} all share one {attr}?",
        "Are all of the {scope_pl} [of |]the same {attr}?",
        "Is there only one {attr} among the {scope_pl}?",
    ],
    "all": [
        "Are all [the |of the |]{scope_pl} {pred_pl}?",
        "Is [every|each] {scope_sg} {pred_sg}?",
        "Are the {scope_pl} all {pred_pl}?",
        "Is it true that all [the |]{scope_pl} are {pred_pl}?",
    ],
    "any": [
        "Are any [of the |]{scope_pl} {pred_pl}?",
        "Is [any|at least one] {scope_sg} {pred_sg}?",
        "Is at least one of the {scope_pl} {pred_sg}?",
    ],
    "none": [
        "Are none of the {scope_pl} {pred_pl}?",
        "Is no {scope_sg} {pred_sg}?",
        "Is it true that none of the {scope_pl} are {pred_pl}?",
        "Is it true that no {scope_sg} is {pred_sg}?",
    ],
    # --- positions on the grid
    "position_what": [
        "What is [in|at] {cell}?",
        "What object is [in|at] {cell}?",
        "What do you see [in|at] {cell}?",
        "What is [located|placed] [in|at] {cell}?",
        "Which object is [in|at] {cell}?",
        "[Tell me|Say] what is [in|at] {cell}.",
    ],
    "position_attr": [
        "What {attr} is the [object|shape|thing] [in|at] {cell}?",
        "What is the {attr} of the [object|shape] [in|at] {cell}?",
        "What {attr} is [in|at] {cell}?",
        "Which {attr} does the [object|shape] [in|at] {cell} have?",
        "[Tell me|Name] the {attr} of the [object|shape] [in|at] {cell}.",
    ],
    "position_where": [
        "Where is the {REF}?",
        "Where is the {REF} [located|placed]?",
        "In which [cell|position] is the {REF}?",
        "What [cell|position] is the {REF} in?",
        "[Tell me|Say] where the {REF} is.",
        "Where in the {IMAGE} is the {REF}?",
    ],
    "position_row": [
        "Which row is the {REF} in?",
        "In which row is the {REF}?",
        "What row is the {REF} [in|on]?",
        "[Tell me|Say] which row the {REF} is in.",
    ],
    "position_col": [
        "Which column is the {REF} in?",
        "In which column is the {REF}?",
        "What column is the {REF} [in|on]?",
        "[Tell me|Say] which column the {REF} is in.",
    ],
    # --- rows and columns
    "rowcol_count": [
        "How many {PL} are [in|there in] {line}?",
        "How many {PL} [can you see|do you see] in {line}?",
        "Count the {PL} in {line}.",
        "What is the number of {PL} in {line}?",
        "In {line}, how many {PL} are there?",
        "How many {PL} does {line} [contain|have|hold]?",
    ],
    "rowcol_exist": [
        "Is there {A_SG} in {line}?",
        "Are there any {PL} in {line}?",
        "Does {line} [contain|have] {A_SG}?",
        "[Can|Do] you see {A_SG} in {line}?",
        "Is there {A_SG} [present|visible] in {line}?",
    ],
    "rowcol_extreme": [
        "What is the {extreme} [object|shape] in {line}?",
        "Which [object|shape] is {extreme} in {line}?",
        "[Tell me|Name] the {extreme} [object|shape] in {line}.",
        "In {line}, what is the {extreme} [object|shape]?",
    ],
    # --- relations between objects
    "relation_yes": [
        "Is the {REF1} {rel} the {REF2}?",
        "Is the {REF1} [located|placed] {rel} the {REF2}?",
        "Does the {REF1} [sit|lie] {rel} the {REF2}?",
        "Is it true that the {REF1} is {rel} the {REF2}?",
    ],
    "relation_what": [
        "What is {rel} the {REF}?",
        "What object is {rel} the {REF}?",
        "Which object is {rel} the {REF}?",
        "[Tell me|Say] what is {rel} the {REF}.",
        "What do you see {rel} the {REF}?",
    ],
    # --- the whole image
    "describe": [
        "Describe the {IMAGE}.",
        "What is in the {IMAGE}?",
        "What do you see[| in the {IMAGE}]?",
        "[Give|Write] a [short |]description of the {IMAGE}.",
        "Tell me what the {IMAGE} shows.",
        "What does the {IMAGE} show?",
        "What objects are in the {IMAGE}?",
        "List the objects[| in the {IMAGE}].",
        "Can you describe the {IMAGE}?",
    ],
}

# Always trained, whatever the hash says: the phrasings new users try first (issue 18's list,
# the README's examples).
PINNED: dict[str, tuple[str, ...]] = {
    "total": ("How many shapes are there?", "How many objects are in the image?", "Count the objects.",
              "What is the total number of objects?"),
    "count": ("How many {pl} are there?", "How many {pl} are in the image?", "Count the {pl}."),
    "exist": ("Is there {a_sg}?", "Are there any {pl}?"),
    "subtract_step": ("Subtract all {pl}.", "Remove all {pl}."),
    "subtract_end": ("How many objects are left?", "How many objects remain?"),
    "subtract_one": ("If you take away {removals}, how many are left?",),
    "position_what": ("What is in {cell}?",),
}

# Cells and lines as people name them (the four corners also by their cell).
CORNERS = {(1, 1): ("the top left corner", "the upper left corner", "the top-left corner"),
           (1, 4): ("the top right corner", "the upper right corner", "the top-right corner"),
           (4, 1): ("the bottom left corner", "the lower left corner", "the bottom-left corner"),
           (4, 4): ("the bottom right corner", "the lower right corner", "the bottom-right corner")}
CELL = ("row {r}, column {c}", "row {r} and column {c}", "the cell in row {r}, column {c}", "the {rth} row, {cth} column")
ORDINALS = ("first", "second", "third", "fourth")
ROW = ("row {n}", "the {nth} row")
COLUMN = ("column {n}", "the {nth} column")
EDGE_ROWS = {1: ("the top row",), 4: ("the bottom row",)}
EDGE_COLUMNS = {1: ("the left column", "the leftmost column"), 4: ("the right column", "the rightmost column")}
# The first and the last object of a row (left to right) or a column (top to bottom).
EXTREMES = {("row", 0): ("leftmost",), ("row", -1): ("rightmost",),
            ("column", 0): ("topmost", "highest"), ("column", -1): ("bottommost", "lowest")}
# Relations: canonical name -> how a question may say it.
RELATIONS = {"left": ("left of", "to the left of"), "right": ("right of", "to the right of"),
             "above": ("above",), "below": ("below", "under", "beneath"), "next": ("next to", "beside")}
DIRECTLY = {"left": ("directly left of", "directly to the left of", "just left of", "immediately left of"),
            "right": ("directly right of", "directly to the right of", "just right of", "immediately right of"),
            "above": ("directly above", "just above", "right above", "immediately above"),
            "below": ("directly below", "just below", "right below", "directly under"),
            "next": ("next to", "beside")}
