"""The CLI shell: fast help, lazy imports, one-line errors with exit code 2."""

import subprocess
import sys

from llava_cot.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_help_imports_nothing_heavy():
    # `llava-cot --help` must stay fast: no command module, image or ML library imported.
    code = (
        "import sys; from llava_cot.cli import main; main(['--help']); "
        "heavy = [m for m in ('torch', 'transformers', 'PIL', 'numpy', 'llava_cot.synth', 'llava_cot.check') "
        "if m in sys.modules]; print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_group_help(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "synth" in out and "check" in out


def test_unknown_command_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_command_help_shows_field_help(capsys):
    try:
        main(["data", "check", "--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "root directory of the images" in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "llava_cot", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("llava-cot ")
