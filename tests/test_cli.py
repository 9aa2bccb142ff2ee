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


def test_command_help_offers_every_registered_search_without_heavy_imports():
    # ask/eval take their --search choices from the registry: a new search is one dict line
    code = (
        "import contextlib, io, sys; from llava_cot.cli import main; from llava_cot.search import SEARCHES\n"
        "for cmd in ('ask', 'eval'):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit): main([cmd, '--help'])\n"
        "    print(cmd, '{' + ','.join(SEARCHES) + '}' in out.getvalue())\n"
        "print('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == ["ask True", "eval True", "HEAVY []"]


def test_train_on_a_file_not_utf8_one_line_exit_2(tmp_path, capsys):
    data = tmp_path / "f.jsonl"
    data.write_bytes(b"\x00\xff\xfe garbage\n")  # printf '\x00\xff\xfe garbage\n'
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "out"), "--init", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"{data}: skipping bad record at line 1: not UTF-8 text: byte 0xff at column 2 (save the file as UTF-8)"
    assert err[-1].startswith(f"llava-cot: error: {data} has no usable records") and len(err) == 2
    assert not (tmp_path / "out").exists()
