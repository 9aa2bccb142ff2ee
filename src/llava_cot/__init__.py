"""llava-cot: vision-language models that reason in four tagged stages.

The library is the product and the CLI (`llava-cot`) is a thin layer over it. Importing this
package is cheap: nothing heavy (torch, transformers) is imported until a command needs it.
"""

from llava_cot.errors import LlavaCotError
from llava_cot.stages import STAGES, Parsed, Problem, StreamParser, parse, render

__version__ = "0.1.0"
__all__ = ["STAGES", "LlavaCotError", "Parsed", "Problem", "StreamParser", "__version__", "parse", "render"]
