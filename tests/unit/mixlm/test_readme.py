from mixlm import docs


def test_readme_settings_table_matches_the_settings_object():
    text = docs.README.read_text()
    assert docs.render(text) == text, "README's configuration table is stale: run `python -m mixlm.docs`"


def test_readme_test_command_is_what_ci_runs():
    ci = (docs.README.parent / ".ci" / "run").read_text()
    assert "make test" in docs.README.read_text() and "make test" in ci
