"""`mixlm serve` is registered and its options map onto Settings."""

from click.testing import CliRunner

from mixlm.cli import cli


def test_serve_is_a_mixlm_subcommand_with_its_options():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--engine", "--base-model", "--weights"):
        assert option in result.output


def test_serve_rejects_an_unknown_engine():
    result = CliRunner().invoke(cli, ["serve", "--engine", "vllm"])
    assert result.exit_code != 0 and "vllm" in result.output
